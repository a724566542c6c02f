"""The inference service every front door calls: served model, batcher, swap, task head.

Front doors (MQTT, HTTP) decode their own requests into faces, hand them to the service and
encode the :class:`Outcome` their own way. The service knows nothing of how a request came in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from edge_runtime.backends.base import Model
from edge_runtime.batching import BatchOutcome, BatchStats, Job, MicroBatcher
from edge_runtime.messages import FacePixels, FaceResult, ModelRef, SampleSource, Status
from edge_runtime.metrics import Metrics
from edge_runtime.placement import Placement
from edge_runtime.settings import BatchSettings

if TYPE_CHECKING:
    from edge_runtime.offload.joint import Offloader

Deliver = Callable[["Outcome"], None]


class Outcome(NamedTuple):
    """What became of one request's faces (a NamedTuple, as ``BatchOutcome``: one per request).

    ``model`` is the version that answered (OK, INTERNAL) or the one serving when the request
    was turned away; ``results`` are in the order of the submitted faces.
    """

    status: Status
    model: ModelRef
    results: tuple[FaceResult, ...] = ()
    error: str = ""
    queue_s: float = 0.0
    inference_s: float = 0.0
    batch_faces: int = 0
    refinement: bool = False  # a second outcome for the same request: the cloud's answers


def classify(
    probabilities: npt.NDArray[np.float32], labels: tuple[str, ...]
) -> tuple[FaceResult, ...]:
    """The classification head: the most likely label of each row, with every probability."""
    # Python floats once for the whole array: per-row numpy calls cost more than the rest.
    rows = probabilities.tolist()
    indices = probabilities.argmax(axis=1).tolist()
    return tuple(
        FaceResult(labels[i], i, row[i], tuple(row)) for i, row in zip(indices, rows, strict=True)
    )


class InferenceService:
    """Serves one model at a time to every front door through one batcher.

    Args:
        settings: Batching settings (sizes, waits, queue bound, timeout).
        model: The model to serve first.
        metrics: Where batches, faces and the served model are counted.
        clock: Monotonic clock (injected by tests).
        offloader: Joint inference: sends each batch's hard faces to the cloud's model.
    """

    def __init__(
        self,
        settings: BatchSettings,
        *,
        model: Model,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        offloader: Offloader | None = None,
    ) -> None:
        self._settings = settings
        self._offload = offloader
        self._model = model
        self._metrics = metrics
        self._swapped: list[Callable[[Model], None]] = []
        self._waiting: set[asyncio.Future[Outcome]] = set()
        self._classified_rows: npt.NDArray[np.float32] | None = None  # the last batch's rows
        self._classified: tuple[FaceResult, ...] = ()  # ... classified
        metrics.serving(model.ref.name, model.ref.version, model.variant)
        self._batcher = MicroBatcher(
            lambda: self._model,
            max_size=settings.max_size,
            max_wait_s=settings.max_wait_s,
            max_queue=settings.max_queue,
            request_timeout_s=settings.request_timeout_s,
            clock=clock,
            on_batch=self._observe_batch,
            on_loop=settings.on_loop,
            placement=Placement() if settings.off_loop_when_busy else None,
        )

    @property
    def model(self) -> Model:
        """The model answering the next batch."""
        return self._model

    @property
    def stats(self) -> BatchStats:
        """Batches, faces, failed batches and expired requests so far."""
        return self._batcher.stats

    @property
    def depth(self) -> int:
        """Requests waiting for a batch."""
        return self._batcher.depth

    def on_swap(self, observer: Callable[[Model], None]) -> None:
        """Call ``observer`` with the new model after every swap."""
        self._swapped.append(observer)

    def swap(self, model: Model) -> Model:
        """Serve ``model`` from the next batch on; return the previous model (still open)."""
        previous, self._model = self._model, model
        self._metrics.serving(model.ref.name, model.ref.version, model.variant)
        for observer in self._swapped:
            observer(model)
        return previous

    def submit(
        self,
        faces: tuple[FacePixels, ...],
        deliver: Deliver,
        shared: SampleSource | None = None,
    ) -> None:
        """Queue ``faces``; ``deliver`` is called on the event loop with their outcome.

        The callback form costs no future and no extra loop turn: the MQTT door's hot path.
        ``shared``: the request's device consented to its hard faces being kept for training.

        Raises:
            Overloaded: the queue is full; nothing was queued.
        """
        offload = self._offload
        if offload is None:
            self._batcher.submit(Job(faces, lambda batch: deliver(self._outcome(batch))))
            return

        def done(batch: BatchOutcome) -> None:
            labels = (batch.model or self._model).labels
            offload.consider(faces, self._outcome(batch), deliver, labels, shared)

        self._batcher.submit(Job(faces, done))

    async def infer(self, faces: tuple[FacePixels, ...]) -> Outcome:
        """Queue ``faces`` and wait for their outcome.

        Raises:
            Overloaded: the queue is full; nothing was queued.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def deliver(outcome: Outcome) -> None:
            if not future.done():  # the caller may have gone (a closed HTTP connection)
                future.set_result(outcome)

        self.submit(faces, deliver)
        self._waiting.add(future)
        try:
            return await future
        finally:
            self._waiting.discard(future)

    async def serve(self) -> None:
        """Run batches until cancelled; then cancel whoever still awaits ``infer``."""
        try:
            await self._batcher.serve()
        finally:
            if self._offload is not None:
                await self._offload.close()  # what is with the cloud is answered by the edge
            for future in self._waiting:
                future.cancel()

    async def drain(self) -> None:
        """Wait until every queued request has its outcome (``serve`` must be running)."""
        await self._batcher.drain()
        if self._offload is not None:
            await self._offload.idle()

    def _outcome(self, batch: BatchOutcome) -> Outcome:
        self._metrics.queue_seconds.observe(batch.queue_s)
        status, model, error = Status.OK, batch.model, batch.error
        results: tuple[FaceResult, ...] = ()
        if batch.expired:
            status = Status.DEADLINE_EXCEEDED
            limit = self._settings.request_timeout_s
            error = f"waited {batch.queue_s:.3f} s in queue (limit {limit} s)"
        elif model is None:
            status = Status.UNAVAILABLE
        elif batch.batch is None:
            status = Status.INTERNAL
        else:
            # The batch's jobs come one after another: classify its rows once, slice per job
            # (numpy's argmax and tolist once a batch, not once a request).
            if batch.batch is not self._classified_rows:
                self._classified = classify(batch.batch, model.labels)
                self._classified_rows = batch.batch
            results = self._classified[batch.first : batch.first + batch.rows]
        return Outcome(
            status,
            (model or self._model).ref,
            results,
            error,
            batch.queue_s,
            batch.inference_s,
            batch.batch_faces,
        )

    def _observe_batch(self, faces: int, inference_s: float) -> None:
        self._metrics.faces.inc(faces)
        self._metrics.batch_size.observe(faces)
        self._metrics.inference_seconds.observe(inference_s)
        self._metrics.queue_depth.set(self._batcher.depth)
