"""Load with figures for the fault tests: devices using the retry client in closed loop.

Each scenario reports sent, answered, lost, duplicates (second answers the devices ignored)
and the runtime's peak RSS when it runs as a process. ``make soak`` runs the scenarios longer
(``EDGE_SOAK_SECONDS``) and prints the table the README shows (rows collected in the file
named by ``EDGE_SOAK_REPORT``).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_runtime import (
    AnswerTimeout,
    InferenceClient,
    Request,
    RetryPolicy,
    Status,
    Topics,
)
from tests.support.devices import face, retrying_device

SOAK_SECONDS = float(os.environ.get("EDGE_SOAK_SECONDS", "0"))


def seconds(short: float) -> float:
    """How long a phase of a scenario lasts: ``short`` in CI, longer under ``make soak``."""
    return max(short, SOAK_SECONDS)


@dataclass
class Figures:
    """What one scenario did to the requests."""

    scenario: str
    sent: int = 0
    answered: int = 0
    lost: int = 0
    duplicates: int = 0
    not_ok: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    def report(self) -> None:
        """Print the row, and add it to the soak report when one is collected."""
        print(f"FIGURES {json.dumps(asdict(self))}")
        target = os.environ.get("EDGE_SOAK_REPORT")
        if target:
            with Path(target).open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(self)) + "\n")


class Load:
    """``devices`` cameras, each keeping ``in_flight`` requests outstanding until stopped."""

    def __init__(
        self,
        url: str,
        root: str,
        unique: str,
        figures: Figures,
        *,
        devices: int = 4,
        in_flight: int = 4,
        policy: RetryPolicy | None = None,
        keepalive_s: int = 30,
    ) -> None:
        self._url = url
        self._topics = Topics(root)
        self._unique = unique
        self.figures = figures
        self._devices = devices
        self._in_flight = in_flight
        self._policy = policy or RetryPolicy(first_wait_s=1.0, max_wait_s=4.0, deadline_s=60.0)
        self._keepalive_s = keepalive_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.answered_once = asyncio.Event()

    async def __aenter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(30):
            await self.answered_once.wait()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for d in range(self._devices):
                tg.create_task(self._device(f"cam{d}"))

    async def _device(self, name: str) -> None:
        async with retrying_device(
            self._url,
            self._topics.root,
            name,
            self._policy,
            session_expiry_s=300,
            keepalive_s=self._keepalive_s,
            reconnect_min_s=0.1,
            reconnect_max_s=1.0,
        ) as client:
            await asyncio.gather(*(self._loop(client, name, k) for k in range(self._in_flight)))
        self.figures.duplicates += client.duplicates

    async def _loop(self, client: InferenceClient, name: str, lane: int) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            self.figures.sent += 1
            try:
                response = await client.infer(
                    Request(f"{name}-{lane}-{number}", name, 0, (face(number),))
                )
            except AnswerTimeout:
                self.figures.lost += 1
                continue
            self.figures.answered += 1
            self.answered_once.set()
            if response.status is not Status.OK:
                status = response.status.name
                self.figures.not_ok[status] = self.figures.not_ok.get(status, 0) + 1


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a running process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
