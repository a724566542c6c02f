"""Recent answers per (device, request_id), so that a device's retry never runs the model twice.

Devices retry a request with the same ``request_id`` when its answer does not come (brokers drop
QoS 1 messages past their queue limits; mosquitto 1.6.15, KubeEdge's broker, keeps 100 per
client). A retry of a request still being worked on is acknowledged and ignored: its answer is
on the way. A retry of an answered one is answered again from here. Only OK answers are kept:
a retry after RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED must get a fresh try.

A retry is the same id with the same faces: each entry keeps a digest of the faces' pixels, so
a device that reuses an id for other faces (restarted, counting from 1 again) is answered
anew, never with the answer to an older request.
"""

from __future__ import annotations

import collections
import enum
import zlib
from collections.abc import Iterable

import numpy as np

from edge_runtime.messages import FacePixels, Response, Status

Key = tuple[str, str]  # (device, request_id)


def digest(faces: Iterable[FacePixels]) -> int:
    """What tells a retry from another request under the same id: a CRC of the pixels."""
    value = 0
    for face in faces:
        value = zlib.crc32(np.ascontiguousarray(face.pixels).data, value)
    return value


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
        self._in_progress: dict[Key, int] = {}
        self._answers: collections.OrderedDict[Key, tuple[int, Response]] = (
            collections.OrderedDict()
        )

    def remembers(self, request_id: str) -> bool:
        """Whether a request with this id is kept track of (its faces' digest is then needed)."""
        return bool(self._capacity and request_id)

    def begin(self, device: str, request_id: str, faces: int = 0) -> tuple[Seen, Response | None]:
        """Register a request; say whether it is new, in progress or answered (with the answer).

        ``faces`` is the request's :func:`digest`.
        """
        if not self._capacity or not request_id:
            return Seen.NEW, None
        key = (device, request_id)
        if self._in_progress.get(key) == faces:
            return Seen.IN_PROGRESS, None
        kept = self._answers.get(key)
        if kept is not None:
            if kept[0] == faces:
                self._answers.move_to_end(key)
                return Seen.ANSWERED, kept[1]
            del self._answers[key]  # an older request's answer under a reused id
        self._in_progress.setdefault(key, faces)
        return Seen.NEW, None

    def finish(self, device: str, request_id: str, response: Response, faces: int = 0) -> None:
        """The request (with faces of digest ``faces``) was answered with ``response``."""
        key = (device, request_id)
        if self._in_progress.get(key) == faces:
            del self._in_progress[key]
        if not self._capacity or not request_id or response.status is not Status.OK:
            return
        self._answers[key] = (faces, response)
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)
