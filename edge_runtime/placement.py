"""Where each batch runs: on the event loop's thread, or on the model's worker thread.

On the loop thread a batch needs no thread hand-off: the lowest latency, and the most faces a
second through the MQTT door, where the model is most of the loop's work. Behind the HTTP
doors the loop's own work (HTTP, JSON) can be the larger part, and once the loop thread is
saturated every batch it runs is time no request is parsed: the batch may do better on the
model's worker thread, on one interpreter thread, which takes one core and leaves the other
to the loop (A/B rounds at 32 in flight, always off the loop: TF Serving door 767 -> 935
requests/s, OIP door 1,060 -> 1,232, but the MQTT door's maximum 2,262 -> 1,566;
docs/benchmarks.md).

So it is decided by measurement, over one-second windows on the loop thread. While the loop
thread is saturated (busy 90 % of a window or more), its faces a second are noted; batches
leave it when the loop's own work outweighs the model's and the worker, if tried lately,
answered more faces a second. Off the loop they stay while the worker answers more than the
saturated loop did, and come back otherwise (the model on the worker was the bottleneck,
requests took turns with one or a few in flight, or the load went), or at once when the
loop's own work no longer outweighs what the model cost on the loop (another load, such as
the MQTT door's). The worker's figure is the best window of its last stint, forgotten after
a minute on the loop (loads change). Otherwise two windows in a row must agree before the
batches move, and batches that come back within ten windows because the worker answered
fewer need twice as many windows to leave again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

WORKER_THREADS = 1  # interpreter threads for a batch off the loop (measured: see the module)
_SATURATED = 0.9  # the loop thread busy this share of a window or more
_BETTER = 1.05  # off the loop only if the worker answered this many times as many faces
_KEPT = 1.0  # off the loop, the worker must keep answering this many times as many
_WINDOWS = 2  # consecutive windows that must agree
_SOON = 10  # windows: back on the loop within this many, the next move off waits longer
_MOST_WINDOWS = 32
_FORGET = 60  # windows on the loop after which the worker's figure is measured again


class Window(NamedTuple):
    """What one window measured."""

    busy: float  # the loop thread's CPU share
    model: float  # the model's share (on the loop or the worker)
    faces_per_s: float


class Placement:
    """Whether the next batch runs on the loop thread, from what the last windows measured.

    Call ``ran`` on the loop thread after every batch.

    Args:
        window_s: Length of one measurement window.
        clock: Monotonic wall clock (injected by tests).
        cpu: The calling thread's CPU clock (``time.thread_time``; injected by tests).
    """

    def __init__(
        self,
        *,
        window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self.on_loop = True
        self._window_s = window_s
        self._clock = clock
        self._cpu = cpu
        self._started = clock()
        self._cpu_started = cpu()
        self._model_s = 0.0  # model time this window, wherever it ran
        self._faces = 0
        self._loop_rate = 0.0  # faces/s of the last window with the loop thread saturated
        self._model_per_face = 0.0  # the model's seconds a face on the loop, last measured
        self._worker_rate: float | None = None  # best faces/s of the last stint off the loop
        self._windows_on = 0  # windows measured since batches last came back to the loop
        self.last = Window(0.0, 0.0, 0.0)
        self._votes = 0
        self._needed = _WINDOWS  # windows that must agree before batches leave the loop
        self._windows_off = 0  # windows measured since batches last left the loop

    def ran(self, model_s: float, faces: int) -> bool:
        """Count one batch (run where ``on_loop`` said); True if the next batches move."""
        self._model_s += model_s
        self._faces += faces
        now = self._clock()
        wall = now - self._started
        if wall < self._window_s:
            return False
        cpu = self._cpu()
        loop_s = cpu - self._cpu_started
        busy, rate = loop_s / wall, self._faces / wall
        self.last = Window(busy, self._model_s / wall, rate)
        own_s = loop_s - self._model_s if self.on_loop else loop_s
        misjudged = False  # off the loop, the worker answered fewer than the loop had
        if self.on_loop:
            move, needed = False, self._needed
            self._windows_on += 1
            if self._windows_on > _FORGET:
                self._worker_rate = None
            if self._faces:
                self._model_per_face = self._model_s / self._faces
            if busy >= _SATURATED:
                self._loop_rate = rate
                # Worth a try only if the loop's own work outweighs the model's, and the
                # worker, if tried lately, answered more.
                move = own_s > self._model_s and (
                    self._worker_rate is None or self._worker_rate > _BETTER * rate
                )
        else:
            first = self._windows_off == 0
            self._worker_rate = rate if first else max(rate, self._worker_rate or 0.0)
            # Back when the loop's own work no longer outweighs the model's (another load:
            # the MQTT door's), or when the worker answers fewer than the saturated loop did.
            lighter = own_s < self._model_per_face * self._faces
            misjudged = not lighter and rate < _KEPT * self._loop_rate
            move, needed = lighter or misjudged, 1 if lighter else _WINDOWS
            self._windows_off += 1
        self._started, self._cpu_started = now, cpu
        self._model_s, self._faces = 0.0, 0
        self._votes = self._votes + 1 if move else 0
        if self._votes < needed:
            return False
        if not self.on_loop and misjudged and self._windows_off <= _SOON:
            self._needed = min(2 * self._needed, _MOST_WINDOWS)
        self.on_loop, self._votes, self._windows_off, self._windows_on = not self.on_loop, 0, 0, 0
        return True
