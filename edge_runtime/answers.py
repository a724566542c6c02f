"""Recent answers per (device, request_id), so that a device's retry never runs the model twice.

Devices retry a request with the same ``request_id`` when its answer does not come (brokers drop
QoS 1 messages past their queue limits; mosquitto 1.6.15, KubeEdge's broker, keeps 100 per
client). A retry of a request still being worked on is acknowledged and ignored: its answer is
on the way. A retry of an answered one is answered again from here. Only OK answers are kept:
a retry after RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED must get a fresh try.
"""

from __future__ import annotations

import collections
import enum

from edge_runtime.messages import Response, Status

Key = tuple[str, str]  # (device, request_id)


class Seen(enum.Enum):
    """What the runtime knows of a request id."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"


class RecentAnswers:
    """Requests in progress and the last ``capacity`` OK answers (least recent dropped first).

    Args:
        capacity: Answers kept; 0 turns deduplication off.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._in_progress: set[Key] = set()
        self._answers: collections.OrderedDict[Key, Response] = collections.OrderedDict()

    def begin(self, device: str, request_id: str) -> tuple[Seen, Response | None]:
        """Register a request; say whether it is new, in progress or answered (with the answer)."""
        if not self._capacity or not request_id:
            return Seen.NEW, None
        key = (device, request_id)
        if key in self._in_progress:
            return Seen.IN_PROGRESS, None
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
            return Seen.ANSWERED, answer
        self._in_progress.add(key)
        return Seen.NEW, None

    def finish(self, device: str, request_id: str, response: Response) -> None:
        """The request was answered with ``response``."""
        key = (device, request_id)
        self._in_progress.discard(key)
        if not self._capacity or not request_id or response.status is not Status.OK:
            return
        self._answers[key] = response
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)
