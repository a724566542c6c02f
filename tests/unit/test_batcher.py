"""MicroBatcher: batches by size or deadline, carry-over, bounded queue, expiry, failures, swaps."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edge_runtime.batching import BatchOutcome, Job, MicroBatcher
from edge_runtime.errors import Overloaded
from edge_runtime.messages import FacePixels
from edge_runtime.testing import FakeModel


def faces(count: int, gray: int = 0) -> tuple[FacePixels, ...]:
    return tuple(FacePixels(np.full((8, 8, 1), gray, np.uint8)) for _ in range(count))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batcher(model: FakeModel | None, **overrides: object) -> MicroBatcher:
    options: dict[str, object] = {
        "max_size": 4,
        "max_wait_s": 0.01,
        "max_queue": 8,
        "request_timeout_s": 5.0,
    }
    options.update(overrides)
    return MicroBatcher(lambda: model, **options)  # type: ignore[arg-type]


async def drained(b: MicroBatcher) -> None:
    """Serve until everything submitted so far was delivered."""
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(b.serve())
        async with asyncio.timeout(2):
            await b.drain()
        serving.cancel()


def job(count: int, outcomes: list[BatchOutcome], gray: int = 0) -> Job:
    return Job(faces(count, gray), outcomes.append)


async def test_a_full_batch_runs_without_waiting_for_the_deadline() -> None:
    model, outcomes = FakeModel(), []
    b = batcher(model, max_wait_s=60)
    for _ in range(4):
        b.submit(job(1, outcomes))
    await drained(b)
    assert model.batches == [4]
    assert [o.batch_faces for o in outcomes] == [4, 4, 4, 4]


async def test_a_partial_batch_runs_at_its_deadline() -> None:
    model, outcomes = FakeModel(), []
    b = batcher(model, max_wait_s=0.02)
    b.submit(job(1, outcomes))
    await drained(b)
    assert model.batches == [1]


async def test_a_request_that_does_not_fit_starts_the_next_batch_whole() -> None:
    model, outcomes = FakeModel(), []
    b = batcher(model, max_size=4)
    b.submit(job(3, outcomes))
    b.submit(job(2, outcomes))  # 3 + 2 > 4: never split across batches
    await drained(b)
    assert model.batches == [3, 2]
    assert [None if o.probabilities is None else len(o.probabilities) for o in outcomes] == [3, 2]


async def test_each_job_gets_its_own_rows_in_order() -> None:
    model, outcomes = FakeModel(), []
    b = batcher(model)
    b.submit(job(1, outcomes, gray=1))
    b.submit(job(2, outcomes, gray=2))
    await drained(b)
    rows = [
        o.probabilities.argmax(axis=1).tolist() for o in outcomes if o.probabilities is not None
    ]
    assert rows == [[1], [2, 2]]


def test_a_full_queue_refuses_and_keeps_nothing() -> None:
    b, outcomes = batcher(FakeModel(), max_queue=2), []
    b.submit(job(1, outcomes))
    b.submit(job(1, outcomes))
    with pytest.raises(Overloaded):
        b.submit(job(1, outcomes))
    assert b.depth == 2


async def test_a_request_that_waited_too_long_expires_without_running() -> None:
    clock, model, outcomes = Clock(), FakeModel(), []
    b = batcher(model, request_timeout_s=1.0, clock=clock)
    b.submit(job(1, outcomes))
    clock.now = 2.0
    await drained(b)
    assert outcomes[0].expired
    assert outcomes[0].queue_s == 2.0
    assert model.batches == []
    assert b.stats.expired == 1


async def test_a_failing_model_fails_its_batch_and_the_next_one_runs() -> None:
    model, outcomes = FakeModel(fail_next=1), []
    b = batcher(model, max_size=1)
    b.submit(job(1, outcomes))
    b.submit(job(1, outcomes))
    await drained(b)
    assert outcomes[0].probabilities is None
    assert "inference failed" in outcomes[0].error
    assert outcomes[1].probabilities is not None
    assert b.stats.failed_batches == 1
    assert b.stats.batches == 1


async def test_no_model_answers_an_error() -> None:
    b, outcomes = batcher(None), []
    b.submit(job(1, outcomes))
    await drained(b)
    assert outcomes[0].model is None
    assert outcomes[0].error == "no model loaded"


async def test_the_model_is_asked_for_at_every_batch() -> None:
    first, second, outcomes = FakeModel("1.0.0"), FakeModel("2.0.0"), []
    serving_now = [first]
    b = MicroBatcher(
        lambda: serving_now[0], max_size=1, max_wait_s=0, max_queue=4, request_timeout_s=5
    )
    b.submit(job(1, outcomes))
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(b.serve())
        await b.drain()
        serving_now[0] = second
        b.submit(job(1, outcomes))
        await b.drain()
        serving.cancel()
    assert [o.model.ref.version for o in outcomes if o.model is not None] == ["1.0.0", "2.0.0"]


async def test_off_the_loop_the_model_runs_through_predict() -> None:
    model, outcomes = FakeModel(), []
    b = batcher(model, on_loop=False)
    b.submit(job(2, outcomes))
    await drained(b)
    assert model.batches == [2]
