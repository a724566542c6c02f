"""InferenceService: the task head, outcomes by status, swaps, awaiting callers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from edge_runtime.errors import Overloaded
from edge_runtime.messages import FacePixels, Status
from edge_runtime.metrics import Metrics
from edge_runtime.service import InferenceService, classify
from edge_runtime.settings import BatchSettings
from edge_runtime.testing import LABELS, FakeModel, label_of


def faces(*grays: int) -> tuple[FacePixels, ...]:
    return tuple(FacePixels(np.full((8, 8, 1), g, np.uint8)) for g in grays)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def running(service: InferenceService) -> AsyncIterator[InferenceService]:
    task = asyncio.create_task(service.serve())
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def service(model: FakeModel, clock: Clock | None = None, **batch: object) -> InferenceService:
    settings = BatchSettings(**{"max_wait_s": 0.001, **batch})  # type: ignore[arg-type]
    return InferenceService(settings, model=model, metrics=Metrics(), clock=clock or Clock())


def test_classify_names_the_most_likely_label_with_every_probability() -> None:
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], np.float32)
    results = classify(probabilities, LABELS)
    assert [(r.label, r.class_index) for r in results] == [("neutral", 1), ("negative", 0)]
    assert results[0].confidence == pytest.approx(0.7)
    assert results[1].probabilities == pytest.approx((0.5, 0.25, 0.25))


async def test_infer_answers_each_face_in_order_naming_the_version() -> None:
    async with running(service(FakeModel("3.1.0"))) as s:
        outcome = await s.infer(faces(0, 1, 2))
    assert outcome.status is Status.OK
    assert outcome.model.version == "3.1.0"
    assert [r.label for r in outcome.results] == [label_of(0), label_of(1), label_of(2)]
    assert outcome.batch_faces == 3


async def test_a_failed_batch_is_internal_with_the_engines_error() -> None:
    async with running(service(FakeModel(fail_next=1))) as s:
        outcome = await s.infer(faces(0))
    assert outcome.status is Status.INTERNAL
    assert "told to fail" in outcome.error


async def test_a_request_past_its_timeout_is_deadline_exceeded() -> None:
    clock = Clock()
    s = service(FakeModel(), clock, request_timeout_s=1.0)
    outcomes = []
    s.submit(faces(0), outcomes.append)
    clock.now = 5.0
    async with running(s):
        await s.drain()
    assert outcomes[0].status is Status.DEADLINE_EXCEEDED
    assert "limit 1.0 s" in outcomes[0].error


async def test_a_swap_serves_from_the_next_batch_and_tells_observers() -> None:
    s, seen = service(FakeModel("1.0.0")), []
    s.on_swap(lambda model: seen.append(model.ref.version))
    async with running(s):
        first = await s.infer(faces(0))
        previous = s.swap(FakeModel("2.0.0"))
        second = await s.infer(faces(0))
    assert (first.model.version, second.model.version) == ("1.0.0", "2.0.0")
    assert previous.ref.version == "1.0.0"
    assert seen == ["2.0.0"]


def test_a_full_queue_raises_overloaded() -> None:
    s = service(FakeModel(), max_queue=1)
    s.submit(faces(0), lambda _: None)
    with pytest.raises(Overloaded):
        s.submit(faces(0), lambda _: None)


async def test_callers_still_waiting_when_the_service_stops_are_cancelled() -> None:
    s = service(FakeModel())
    waiting = asyncio.create_task(s.infer(faces(0)))
    serving = asyncio.create_task(s.serve())
    await asyncio.sleep(0)  # infer has queued, serve not yet run a batch
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    with pytest.raises(asyncio.CancelledError):
        await waiting
