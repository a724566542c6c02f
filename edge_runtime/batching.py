"""Dynamic batching across devices: one bounded queue, batches by size or deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from edge_runtime.backends.base import Model
from edge_runtime.errors import InferenceError, Overloaded
from edge_runtime.messages import FacePixels
from edge_runtime.placement import WORKER_THREADS, Placement
from edge_runtime.preprocessing import prepare_batch

_LOGGER = logging.getLogger(__name__)


class BatchOutcome(NamedTuple):
    """What happened to one job's faces.

    A NamedTuple, not a frozen dataclass: one is made per request, and a frozen dataclass's
    ``__init__`` costs 3x (1.2 against 0.4 us; bench/results/profiles/ab-lean-path.md).
    """

    batch: npt.NDArray[np.float32] | None  # every row of the batch, shared by its jobs
    model: Model | None
    error: str = ""
    expired: bool = False
    queue_s: float = 0.0
    inference_s: float = 0.0
    batch_faces: int = 0
    first: int = 0  # this job's first row in ``batch``
    rows: int = 0  # ... and its number of rows

    @property
    def probabilities(self) -> npt.NDArray[np.float32] | None:
        """This job's rows (None: the model did not answer them)."""
        batch = self.batch
        return None if batch is None else batch[self.first : self.first + self.rows]


@dataclass(slots=True)
class Job:
    """Faces of one request waiting for the model, and who takes their outcome."""

    faces: tuple[FacePixels, ...]
    done: Callable[[BatchOutcome], None]
    enqueued_at: float = 0.0


@dataclass(slots=True)
class BatchStats:
    """What the batcher has done so far."""

    batches: int = 0
    faces: int = 0
    failed_batches: int = 0
    expired: int = 0


class MicroBatcher:
    """Forms batches up to ``max_size`` faces or ``max_wait_s``, runs them on the current model.

    The model is asked for at every batch, so a swap takes effect between two batches.

    Args:
        model: Returns the model to run the next batch on (``None`` while none is loaded).
        max_size: Most faces in one batch.
        max_wait_s: Longest the first face of a batch waits for more.
        max_queue: Most jobs waiting; ``submit`` raises ``Overloaded`` beyond it.
        request_timeout_s: Jobs that waited longer are delivered as expired, not run.
        clock: Monotonic clock in seconds (injected by tests).
        on_batch: Optional observer of (faces, inference_s) per batch.
        on_loop: Run the model on the event loop's thread (blocking it for the batch)
            instead of the model's worker thread; the default agrees with the setting
            ``batch.on_loop`` (measured lowest latency for small models).
        placement: With ``on_loop``, moves batches to the worker thread (on one interpreter
            thread) while the loop thread is saturated by its own work, and back
            (``batch.off_loop_when_busy``); None keeps them where ``on_loop`` says.
    """

    def __init__(
        self,
        model: Callable[[], Model | None],
        *,
        max_size: int,
        max_wait_s: float,
        max_queue: int,
        request_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int, float], None] | None = None,
        on_loop: bool = True,
        placement: Placement | None = None,
    ) -> None:
        self._model = model
        self._on_loop = on_loop
        self.placement = placement if on_loop else None
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._timeout_s = request_timeout_s
        self._clock = clock
        self._on_batch = on_batch
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self._carry: Job | None = None
        self._outstanding = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self.stats = BatchStats()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the batch that is running)."""
        return self._queue.qsize() + (1 if self._carry is not None else 0)

    def submit(self, job: Job) -> None:
        """Queue ``job``.

        Raises:
            Overloaded: if the queue is full; the job was not accepted.
        """
        job.enqueued_at = self._clock()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(
                f"{self._queue.maxsize} requests already queued; retry later"
            ) from None
        self._outstanding += 1
        self._empty.clear()

    def _finish(self, job: Job, outcome: BatchOutcome) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._empty.set()
        job.done(outcome)

    async def _collect(self) -> list[Job]:
        first = self._carry if self._carry is not None else await self._queue.get()
        self._carry = None
        batch = [first]
        faces = len(first.faces)
        deadline = self._clock() + self._max_wait_s
        while faces < self._max_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        job = await self._queue.get()
                except TimeoutError:
                    break
            if faces + len(job.faces) > self._max_size:
                self._carry = job  # starts the next batch
                break
            batch.append(job)
            faces += len(job.faces)
        return batch

    async def serve(self) -> None:
        """Run batches until cancelled."""
        while True:
            await self._run(await self._collect())

    async def _run(self, jobs: list[Job]) -> None:
        started = self._clock()
        live: list[Job] = []
        for job in jobs:
            waited = started - job.enqueued_at
            if waited > self._timeout_s:
                self.stats.expired += 1
                self._finish(job, BatchOutcome(None, None, expired=True, queue_s=waited))
            else:
                live.append(job)
        if not live:
            return
        model = self._model()
        faces = sum(len(job.faces) for job in live)
        if model is None:
            for job in live:
                self._finish(job, BatchOutcome(None, None, error="no model loaded"))
            return
        try:
            probabilities, inference_s = await self._predict(model, live, faces)
        except Exception as exc:
            _LOGGER.exception("batch of %d faces failed on %s", faces, model.ref)
            self.stats.failed_batches += 1
            for job in live:
                outcome = BatchOutcome(
                    None,
                    model,
                    error=f"inference failed: {exc}",
                    queue_s=started - job.enqueued_at,
                    batch_faces=faces,
                )
                self._finish(job, outcome)
            return
        self.stats.batches += 1
        self.stats.faces += faces
        if self._on_batch is not None:
            self._on_batch(faces, inference_s)
        offset = 0
        for job in live:
            count = len(job.faces)
            self._finish(
                job,
                BatchOutcome(
                    probabilities,
                    model,
                    queue_s=started - job.enqueued_at,
                    inference_s=inference_s,
                    batch_faces=faces,
                    first=offset,
                    rows=count,
                ),
            )
            offset += count

    async def _predict(
        self, model: Model, live: list[Job], faces: int
    ) -> tuple[npt.NDArray[np.float32], float]:
        batch = prepare_batch([f for job in live for f in job.faces], model.input_spec)
        started = self._clock()
        placement = self.placement
        if placement is not None and not placement.on_loop:
            probabilities = await model.predict(batch, threads=WORKER_THREADS)
        elif self._on_loop:
            probabilities = model.predict_now(batch)
        else:
            probabilities = await model.predict(batch)
        elapsed = self._clock() - started
        if placement is not None and placement.ran(elapsed, faces):
            _LOGGER.info(
                "batches now run %s (last window: loop thread busy %.0f %%, model %.0f %%, "
                "%.0f faces/s)",
                "on the event loop's thread"
                if placement.on_loop
                else f"on the model's worker thread ({WORKER_THREADS} interpreter thread): "
                "the loop thread is saturated by its own work",
                100 * placement.last.busy,
                100 * placement.last.model,
                placement.last.faces_per_s,
            )
        if probabilities.shape[0] != faces:
            raise InferenceError(f"model returned {probabilities.shape[0]} rows for {faces} faces")
        return probabilities, elapsed

    async def drain(self) -> None:
        """Wait until every submitted job has been delivered (``serve`` must be running)."""
        await self._empty.wait()
