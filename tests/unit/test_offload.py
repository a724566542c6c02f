"""Joint inference's parts: scores per policy, the circuit breaker, the rate limit, and the
offloader inside the inference service with a cloud that answers, fails, or never answers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from edge_runtime.messages import FacePixels, ModelRef, Source, Status
from edge_runtime.metrics import Metrics
from edge_runtime.offload.cloud import CloudError
from edge_runtime.offload.guards import Circuit, CircuitBreaker, TokenBucket
from edge_runtime.offload.joint import Offloader
from edge_runtime.offload.twin import OffloadTwin
from edge_runtime.service import InferenceService
from edge_runtime.settings import BatchSettings, OffloadSettings
from edge_runtime.testing import LABELS, FakeModel
from edgeinfer.hardness import Policy, Rule, quantiles, score, threshold_at
from kubeedge_twin.messages import VALUE_PATTERN

RNG = random.Random(0)  # noqa: S311 - the random policy, not a secret


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_margin_max_prob_and_entropy_score_confident_faces_higher() -> None:
    sure, unsure = (0.9, 0.05, 0.05), (0.4, 0.35, 0.25)
    for policy in (Policy.MARGIN, Policy.MAX_PROB, Policy.ENTROPY):
        assert score(policy, sure, RNG) > score(policy, unsure, RNG), policy
    assert score(Policy.MARGIN, sure, RNG) == pytest.approx(0.85)
    assert score(Policy.MAX_PROB, unsure, RNG) == pytest.approx(0.4)


def test_entropy_takes_exact_zeros_as_full_int8_models_give_them() -> None:
    """Sedna's CrossEntropy filter raises on a probability of exactly 0 (math.log(0))."""
    assert score(Policy.ENTROPY, (1.0, 0.0, 0.0), RNG) == pytest.approx(1.0)
    assert score(Policy.ENTROPY, (1 / 3, 1 / 3, 1 / 3), RNG) == pytest.approx(0.0, abs=1e-9)
    k7 = (0.5, 0.3, 0.1, 0.05, 0.03, 0.01, 0.01)  # SEDNA.md's worked example: c = 0.34
    assert score(Policy.ENTROPY, k7, RNG) == pytest.approx(0.34, abs=0.01)


def test_always_never_and_random() -> None:
    assert score(Policy.ALWAYS, (1.0, 0.0), RNG) == -math.inf
    assert score(Policy.NEVER, (0.5, 0.5), RNG) == math.inf
    draws = [score(Policy.RANDOM, (1.0,), RNG) for _ in range(3)]
    assert all(0.0 <= d < 1.0 for d in draws)


def test_the_breaker_opens_after_failures_and_probes_once_after_the_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_s=10.0, clock=clock)
    for _ in range(2):
        breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is Circuit.OPEN
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.allow()
    assert not breaker.allow()
    breaker.failure()  # the probe failed: open again for a full cool-down
    assert breaker.state is Circuit.OPEN
    assert not breaker.allow()
    clock.now = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is Circuit.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_a_probe_that_did_not_go_out_does_not_block_the_next() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_s=1.0, clock=clock)
    breaker.failure()
    clock.now = 1.0
    assert breaker.allow()
    breaker.unused()  # e.g. the rate limit stopped it
    assert breaker.allow()


def test_the_bucket_allows_a_rate_with_a_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=10.0, clock=clock)
    assert bucket.take(10)
    assert not bucket.take(1)
    clock.now = 0.5
    assert bucket.take(5)
    assert not bucket.take(1)
    assert TokenBucket(rate=0.0, burst=0.0).take(10_000)  # 0: no limit


class FakeCloud:
    """The cloud's model: answers ``answer`` (a row per face), fails, or never answers."""

    def __init__(self, mode: str = "answer", row: Sequence[float] = ()) -> None:
        self.mode = mode
        self.row = tuple(row) or (0.0, 0.0, 1.0)
        self.calls: list[int] = []
        self.closed = False

    async def infer(
        self, faces: Sequence[npt.NDArray[np.uint8]]
    ) -> tuple[list[tuple[float, ...]], ModelRef]:
        self.calls.append(len(faces))
        if self.mode == "fail":
            raise CloudError("HTTP 503")
        if self.mode == "refuse":
            raise ConnectionRefusedError("connection refused")
        if self.mode == "silent":
            await asyncio.Event().wait()
        return [self.row for _ in faces], ModelRef("emotion", "9.9.9")

    async def close(self) -> None:
        self.closed = True


def faces(*grays: int) -> tuple[FacePixels, ...]:
    return tuple(FacePixels(np.full((8, 8, 1), g, np.uint8)) for g in grays)


@contextlib.asynccontextmanager
async def joint(
    cloud: FakeCloud, **offload: object
) -> AsyncIterator[tuple[InferenceService, Offloader, Metrics]]:
    metrics = Metrics()
    values: dict[str, object] = {"url": "http://cloud:8501", "budget_ms": 100, **offload}
    offloader = Offloader(OffloadSettings(**values), metrics, cloud)  # type: ignore[arg-type]
    service = InferenceService(
        BatchSettings(max_wait_s=0.001), model=FakeModel(), metrics=metrics, offloader=offloader
    )
    task = asyncio.create_task(service.serve())
    try:
        yield service, offloader, metrics
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def counted(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("edge_offloaded_faces_total", {"result": result})
    return value or 0.0


async def test_hard_faces_are_answered_by_the_cloud_and_easy_ones_by_the_edge() -> None:
    """The fake model gives 0.8 to one label: margin 0.7. A threshold of 0.75 makes every face
    hard, 0.5 none; the cloud's row names label 2 for each face it answers."""
    cloud = FakeCloud()
    async with joint(cloud, threshold=0.75) as (service, _, metrics):
        outcome = await service.infer(faces(0, 1))
    assert outcome.status is Status.OK
    assert [(r.source, r.hard, r.label, r.fallback) for r in outcome.results] == [
        (Source.CLOUD, True, LABELS[2], ""),
        (Source.CLOUD, True, LABELS[2], ""),
    ]
    assert outcome.results[0].model == ModelRef("emotion", "9.9.9")
    assert cloud.calls == [2]
    assert counted(metrics, "cloud") == 2
    async with joint(FakeCloud(), threshold=0.5) as (service, _, _):
        outcome = await service.infer(faces(0))
    assert outcome.results[0].source is Source.EDGE
    assert not outcome.results[0].hard
    assert outcome.results[0].model == ModelRef("fake", "1.0.0")


async def test_the_hard_faces_of_one_batch_go_in_one_request() -> None:
    cloud = FakeCloud()
    async with joint(cloud, threshold=0.75) as (service, _, _):
        await asyncio.gather(*(service.infer(faces(i)) for i in range(5)))
    assert sum(cloud.calls) == 5
    assert len(cloud.calls) < 5


@pytest.mark.parametrize(
    ("mode", "fallback"),
    [("fail", "cloud_error"), ("refuse", "cloud_error"), ("silent", "timeout")],
)
async def test_a_cloud_that_fails_or_never_answers_costs_at_most_the_budget(
    mode: str, fallback: str
) -> None:
    cloud = FakeCloud(mode)
    async with joint(cloud, threshold=0.75, budget_ms=100) as (service, _, metrics):
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await service.infer(faces(0))
        waited = loop.time() - started
    assert outcome.status is Status.OK  # the edge's answer stands
    result = outcome.results[0]
    assert (result.source, result.hard, result.fallback) == (Source.EDGE, True, fallback)
    assert result.label == LABELS[0]
    assert waited < 0.1 + 0.05
    assert counted(metrics, fallback) == 1


async def test_after_the_breaker_opens_hard_faces_cost_nothing() -> None:
    cloud = FakeCloud("silent")
    async with joint(cloud, threshold=0.75, budget_ms=50, breaker_failures=2) as (
        service,
        offloader,
        metrics,
    ):
        for i in range(2):
            await service.infer(faces(i))
        assert offloader.breaker.state is Circuit.OPEN
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await service.infer(faces(3))
        assert loop.time() - started < 0.03
    assert outcome.results[0].fallback == "circuit_open"
    assert len(cloud.calls) == 2
    assert counted(metrics, "circuit_open") == 1


async def test_beyond_the_rate_limit_the_edge_answers() -> None:
    cloud = FakeCloud()
    async with joint(cloud, threshold=0.75, max_faces_per_s=1.0) as (service, _, metrics):
        first = await service.infer(faces(0))
        second = await service.infer(faces(1))
    assert first.results[0].source is Source.CLOUD
    assert second.results[0].fallback == "rate_limited"
    assert counted(metrics, "rate_limited") == 1


async def test_a_stop_answers_what_is_with_the_cloud_from_the_edge() -> None:
    cloud = FakeCloud("silent")
    async with joint(cloud, threshold=0.75, budget_ms=60_000) as (service, _, _):
        outcomes = []
        service.submit(faces(0), outcomes.append)
        await asyncio.sleep(0.05)  # with the cloud now
    assert [r.fallback for r in outcomes[0].results] == ["timeout"]
    assert cloud.closed


async def test_refine_answers_from_the_edge_at_once_and_the_cloud_follows() -> None:
    cloud = FakeCloud()
    async with joint(cloud, threshold=0.75, mode="refine") as (service, _, _):
        outcomes = []
        service.submit(faces(0), outcomes.append)
        await service.drain()
    first, second = outcomes
    assert (first.results[0].source, first.results[0].hard, first.refinement) == (
        Source.EDGE,
        True,
        False,
    )
    assert (second.results[0].source, second.refinement) == (Source.CLOUD, True)


async def test_refine_with_a_failing_cloud_leaves_the_edge_answer_alone() -> None:
    async with joint(FakeCloud("fail"), threshold=0.75, mode="refine") as (service, _, metrics):
        outcomes = []
        service.submit(faces(0), outcomes.append)
        await service.drain()
    assert len(outcomes) == 1
    assert outcomes[0].results[0].source is Source.EDGE
    assert counted(metrics, "cloud_error") == 1


def test_percentiles_give_back_the_threshold_of_a_rate() -> None:
    scores = [i / 999 for i in range(1000)]  # uniform on [0, 1]
    at_percent = quantiles(scores)
    assert len(at_percent) == 101
    assert at_percent[0] == 0.0
    assert at_percent[100] == 1.0
    threshold = threshold_at(at_percent, 0.2)
    assert sum(s < threshold for s in scores) / len(scores) == pytest.approx(0.2, abs=0.002)
    assert threshold_at(at_percent, 0.0) == -math.inf  # no face is below
    assert threshold_at(at_percent, 1.0) == math.inf
    with pytest.raises(ValueError, match="101"):
        threshold_at(at_percent[:50], 0.2)
    with pytest.raises(ValueError, match="non-decreasing"):
        threshold_at(tuple(reversed(at_percent)), 0.2)
    with pytest.raises(ValueError, match="outside"):
        threshold_at(at_percent, 1.5)


def test_a_rule_reads_and_writes_as_a_twin_value() -> None:
    assert Rule.parse("margin") == Rule(Policy.MARGIN)
    assert Rule.parse("entropy,threshold:0.25") == Rule(Policy.ENTROPY, threshold=0.25)
    assert Rule.parse("max_prob,rate:0.2") == Rule(Policy.MAX_PROB, rate=0.2)
    reported = Rule(Policy.ENTROPY, threshold=0.41372, rate=0.2)
    assert str(reported) == "entropy,rate:0.2,threshold:0.4137"
    assert VALUE_PATTERN.match(str(reported))  # KubeEdge takes it (it takes no JSON)
    assert Rule.parse(str(reported)).rate == 0.2
    assert str(Rule(Policy.ALWAYS, threshold=-math.inf)) == "always"
    for bad, says in [
        ("sometimes", "unknown policy"),
        ("margin,threshold", "expected"),
        ("margin,speed:2", "expected"),
        ("margin,rate:0.1,rate:0.2", "once"),
        ("margin,rate:x", "not a number"),
        ("margin,rate:nan", "finite"),
        ("margin,rate:1.5", "outside"),
    ]:
        with pytest.raises(ValueError, match=says):
            Rule.parse(bad)


LINEAR = tuple(p / 100 for p in range(101))  # scores spread evenly over [0, 1]


async def test_a_target_rate_is_fitted_to_each_model_version() -> None:
    """The fake model's faces have margin 0.7: hard below a threshold above it."""
    metrics = Metrics()
    settings = OffloadSettings(url="http://cloud:8501", target_rate=0.8)
    offloader = Offloader(
        settings, metrics, FakeCloud(), model=FakeModel(offload_scores={"margin": LINEAR})
    )
    assert offloader.rule == Rule(Policy.MARGIN, threshold=pytest.approx(0.8), rate=0.8)
    assert metrics.registry.get_sample_value("edge_offload_threshold") == pytest.approx(0.8)
    # A version whose scores run half as high: the same rate, half the threshold.
    halved = tuple(p / 2 for p in LINEAR)
    offloader.use_model(FakeModel("1.1.0", offload_scores={"margin": halved}))
    assert offloader.rule.threshold == pytest.approx(0.4)
    # A version without calibration keeps the settings' threshold, said in the log.
    offloader.use_model(FakeModel("1.2.0"))
    assert offloader.rule.threshold == settings.threshold
    assert offloader.rule.rate == 0.8
    # random needs no calibration; a rule without threshold or rate keeps the settings' rate.
    offloader.use(Rule(Policy.RANDOM), FakeModel())
    assert offloader.rule == Rule(Policy.RANDOM, threshold=0.8, rate=0.8)
    offloader.use(None, FakeModel(offload_scores={"margin": LINEAR}))
    assert offloader.rule.policy is Policy.MARGIN


async def test_the_rate_found_hard_is_counted_between_reports() -> None:
    async with joint(FakeCloud(), threshold=0.75) as (service, offloader, _):
        assert offloader.take_rate() is None  # no face yet
        await service.infer(faces(0, 1))
        assert offloader.take_rate() == 1.0
        offloader.use(Rule(Policy.MARGIN, threshold=0.5), FakeModel())
        await service.infer(faces(0, 1, 2))
        assert offloader.take_rate() == 0.0


class ReportingTwin:
    """A twin that keeps what it was told to report."""

    def __init__(self) -> None:
        self.reports: list[dict[str, str]] = []

    def report(self, values: Mapping[str, str]) -> asyncio.Future[None]:
        self.reports.append(dict(values))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def desired(self) -> AsyncIterator[dict[str, str]]:  # pragma: no cover - unused
        yield {}


async def test_the_twin_sets_the_rule_and_hears_the_rule_in_force_and_the_rate() -> None:
    twin = ReportingTwin()
    model = FakeModel(offload_scores={"margin": LINEAR})
    async with joint(FakeCloud(), threshold=0.5) as (service, offloader, metrics):
        control = OffloadTwin(twin, offloader, lambda: model, metrics, interval_s=3600)
        control.want({"model_version": "1.0.0", "offload_policy": "margin,rate:0.8"})
        assert twin.reports[-1] == {"offload_policy": "margin,rate:0.8,threshold:0.8"}
        control.want({"offload_policy": "margin,rate:0.8", "model_version": "1.1.0"})
        assert len(twin.reports) == 1  # the same rule: nothing to do
        await service.infer(faces(0, 1, 2, 3))
        control.report(with_rate=True)
        assert twin.reports[-1]["offload_rate"] == "1.0000"
        control.want({"offload_policy": "margin;rate=0.8"})
        assert offloader.rule.rate == 0.8  # refused: the rule stays
        refused = {"twin": "offload_policy"}
        assert metrics.registry.get_sample_value("edge_twin_values_refused_total", refused) == 1
        control.want({"offload_policy": ""})  # cleared: the settings' rule again
        assert offloader.rule == Rule(Policy.MARGIN, threshold=0.5)
        control.model_changed(FakeModel("1.1.0"))
        assert twin.reports[-1] == {"offload_policy": "margin,threshold:0.5"}
