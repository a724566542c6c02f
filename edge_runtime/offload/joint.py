"""The join: after its batch, each face is scored; hard ones go to the cloud within a budget.

Everything the cloud can do wrong costs the edge at most the budget: a refused or failed call
answers at once with the edge's result (``fallback="cloud_error"``), a slow or silent cloud
after ``budget`` (``"timeout"``), and once the breaker is open, nothing at all
(``"circuit_open"``). The hard faces of one batch go to the cloud in one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from edge_runtime.backends.base import Model
from edge_runtime.messages import FacePixels, FaceResult, ModelRef, SampleSource, Source, Status
from edge_runtime.metrics import Metrics
from edge_runtime.offload.cloud import CloudModel
from edge_runtime.offload.guards import CircuitBreaker, TokenBucket
from edge_runtime.offload.samples import SampleSink
from edge_runtime.service import Deliver, Outcome
from edge_runtime.settings import OffloadMode, OffloadSettings
from edgeinfer.hardness import Policy, Rule, score, threshold_at
from edgeinfer.v1 import inference_pb2, samples_pb2

_LOGGER = logging.getLogger(__name__)

TIMEOUT = "timeout"
CIRCUIT_OPEN = "circuit_open"
RATE_LIMITED = "rate_limited"
CLOUD_ERROR = "cloud_error"


@dataclass
class _Waiting:
    """One request whose hard faces are with the cloud."""

    faces: tuple[FacePixels, ...]
    outcome: Outcome
    deliver: Deliver
    hard: list[int]
    labels: tuple[str, ...]
    refine: bool  # the edge's answer went already: deliver only the cloud's
    shared: SampleSource | None  # consented: its hard faces are kept as training data


def _uint8(face: FacePixels) -> npt.NDArray[np.uint8]:
    pixels = face.pixels
    if pixels.dtype == np.uint8:
        return pixels  # type: ignore[return-value]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


class Offloader:
    """Decides, per face, whether the cloud should answer, and asks it within the budget.

    Args:
        settings: The ``offload.*`` settings.
        metrics: Where hard faces and offload results are counted.
        cloud: The cloud's model.
        model: The edge's model served first (to fit ``offload.target_rate`` to).
        samples: Where the hard faces of consenting requests go (None: nowhere).
        rng: Draws for the ``random`` policy.
    """

    def __init__(
        self,
        settings: OffloadSettings,
        metrics: Metrics,
        cloud: CloudModel,
        *,
        model: Model | None = None,
        samples: SampleSink | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._cloud = cloud
        self._samples = samples
        self._rng = rng or random.Random()  # noqa: S311 - a sampling policy, not a secret
        self._asked = _settings_rule(settings)  # the rule asked for (settings, or the twin)
        self._policy = self._asked.policy
        self._threshold = settings.threshold
        self._considered = self._found_hard = 0  # faces since take_rate()
        self._budget_s = settings.budget_ms / 1000.0
        clock = clock or time.monotonic
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_open_s, clock)
        rate = settings.max_faces_per_s
        self._bucket = TokenBucket(rate, max(1.0, rate), clock)
        self._waiting: list[_Waiting] = []
        self._flush_soon = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        if model is not None:
            self.use(None, model)

    @property
    def rule(self) -> Rule:
        """The rule in force: the policy, the rate asked for (if any) and the threshold used."""
        return Rule(self._policy, self._threshold, self._asked.rate)

    def use(self, rule: Rule | None, model: Model) -> None:
        """Decide with ``rule`` (None: the settings') for ``model``, the one now served.

        A rule without a threshold or rate keeps the settings'. A rate is turned into
        ``model``'s threshold from its calibration percentiles; a model without them keeps
        the settings' threshold (said in the log).
        """
        if rule is None:
            rule = _settings_rule(self._settings)
        elif rule.threshold is None and rule.rate is None:
            rule = replace(_settings_rule(self._settings), policy=rule.policy)
        self._asked = rule
        self._policy = rule.policy
        self._threshold = self._fitted(rule, model)
        if math.isfinite(self._threshold):
            self._metrics.offload_threshold.set(self._threshold)
        _LOGGER.info("offload rule for %s %s: %s", model.ref.name, model.ref.version, self.rule)

    def use_model(self, model: Model) -> None:
        """The served model changed: fit the rule's rate to it again."""
        self.use(self._asked, model)

    def take_rate(self) -> float | None:
        """The share of faces found hard since the last call (None: no faces since)."""
        considered, hard = self._considered, self._found_hard
        self._considered = self._found_hard = 0
        return hard / considered if considered else None

    def _fitted(self, rule: Rule, model: Model) -> float:
        if rule.rate is None:
            return rule.threshold if rule.threshold is not None else self._settings.threshold
        if rule.policy is Policy.RANDOM:
            return rule.rate  # a uniform draw: the threshold is the rate
        if not rule.policy.calibrated:
            return self._settings.threshold  # always, never: no threshold matters
        percentiles = model.offload_scores.get(rule.policy.value, ())
        try:
            return threshold_at(percentiles, rule.rate)
        except ValueError as exc:
            fallback = rule.threshold if rule.threshold is not None else self._settings.threshold
            _LOGGER.warning(
                "%s %s has no usable %s calibration (%s): offload rate %g not fitted, "
                "threshold %g used",
                model.ref.name,
                model.ref.version,
                rule.policy.value,
                exc,
                rule.rate,
                fallback,
            )
            return fallback

    def consider(
        self,
        faces: tuple[FacePixels, ...],
        outcome: Outcome,
        deliver: Deliver,
        labels: tuple[str, ...],
        shared: SampleSource | None = None,
    ) -> None:
        """Deliver ``outcome`` now, or once the cloud answered its hard faces (within budget).

        ``labels`` are the edge model's, in output order: the cloud's must be the same.
        ``shared``: the device consented; its hard faces are kept (with the cloud's answer).
        """
        if self._samples is None:
            shared = None
        if outcome.status is not Status.OK:
            deliver(outcome)
            return
        policy, threshold = self._policy, self._threshold
        hard = [
            i
            for i, result in enumerate(outcome.results)
            if score(policy, result.probabilities, self._rng) < threshold
        ]
        self._considered += len(outcome.results)
        self._found_hard += len(hard)
        if not hard:
            deliver(_edge(outcome, hard, ""))
            return
        self._metrics.hard_faces.inc(len(hard))
        refused = ""
        if not self.breaker.allow():
            refused = CIRCUIT_OPEN
        elif not self._bucket.take(len(hard)):
            refused = RATE_LIMITED
            self.breaker.unused()  # a half-open probe that did not go out must not block the next
        if refused:
            self._metrics.offloads.labels(refused).inc(len(hard))
            deliver(_edge(outcome, hard, refused))
            if shared is not None:
                self._keep(
                    _Waiting(faces, outcome, deliver, hard, labels, False, shared), (), refused
                )
            return
        refine = self._settings.mode == OffloadMode.REFINE
        if refine:
            deliver(_edge(outcome, hard, ""))
        self._waiting.append(_Waiting(faces, outcome, deliver, hard, labels, refine, shared))
        self._idle.clear()
        if not self._flush_soon:  # the other requests of this batch join in this loop turn
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        waiting, self._waiting = self._waiting, []
        if not waiting:
            if not self._tasks:
                self._idle.set()
            return
        task = asyncio.get_running_loop().create_task(self._ask(waiting))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks and not self._waiting:
            self._idle.set()

    async def _ask(self, waiting: list[_Waiting]) -> None:
        faces = [_uint8(w.faces[i]) for w in waiting for i in w.hard]
        answers: list[tuple[float, ...]] = []
        model = ModelRef("", "")
        fallback, stopped = CLOUD_ERROR, False
        try:
            async with asyncio.timeout(self._budget_s):
                answers, model = await self._cloud.infer(faces)
            fallback = ""
        except TimeoutError:
            fallback = TIMEOUT
        except asyncio.CancelledError:  # the runtime stops: the edge answers, as out of time
            fallback, stopped = TIMEOUT, True
            raise
        except Exception as exc:  # noqa: BLE001 - CloudError, aiohttp, OS: the edge answers
            _LOGGER.info("cloud offload failed: %r", exc)
        finally:
            if not fallback and any(len(row) != len(w.labels) for w in waiting for row in answers):
                fallback = CLOUD_ERROR  # another task's model: its answers mean nothing here
            if not fallback:
                self.breaker.success()
            elif not stopped:
                self.breaker.failure()
            self._metrics.offloads.labels(fallback or "cloud").inc(len(faces))
            start = 0
            for entry in waiting:
                rows = answers[start : start + len(entry.hard)] if not fallback else []
                start += len(entry.hard)
                if not fallback:
                    joined = _joined(entry, rows, model)
                    entry.deliver(joined._replace(refinement=True) if entry.refine else joined)
                elif not entry.refine:  # (refined: the edge's answer stands, already sent)
                    entry.deliver(_edge(entry.outcome, entry.hard, fallback))
                if entry.shared is not None:
                    self._keep(entry, rows, fallback, model)

    def _keep(
        self,
        entry: _Waiting,
        rows: Sequence[tuple[float, ...]],
        fallback: str,
        cloud_model: ModelRef | None = None,
    ) -> None:
        """Each hard face of a consenting request, with both answers, to the sample sink."""
        if self._samples is None or entry.shared is None:
            return
        shared, rule = entry.shared, str(self.rule)
        edge_model = inference_pb2.ModelRef(
            name=entry.outcome.model.name, version=entry.outcome.model.version
        )
        for position, i in enumerate(entry.hard):
            pixels = _uint8(entry.faces[i])
            example = samples_pb2.HardExample(
                device_id=shared.device_id,
                request_id=shared.request_id,
                face_index=i,
                captured_at_ms=shared.captured_at_ms,
                pixels=inference_pb2.Tensor(
                    shape=_shape(pixels), dtype=inference_pb2.DATA_TYPE_UINT8, data=pixels.tobytes()
                ),
                labels=entry.labels,
                edge_model=edge_model,
                edge_probabilities=entry.outcome.results[i].probabilities,
                fallback=fallback,
                rule=rule,
            )
            if position < len(rows) and cloud_model is not None:
                example.cloud_model.name = cloud_model.name
                example.cloud_model.version = cloud_model.version
                example.cloud_probabilities.extend(rows[position])
            self._samples.keep(example)

    async def idle(self) -> None:
        """Wait until every request with the cloud has been answered."""
        await self._idle.wait()

    async def close(self) -> None:
        """Answer what is with the cloud from the edge (as timed out), and close the client."""
        waiting, self._waiting = self._waiting, []  # not sent yet: the edge answers now
        for entry in waiting:
            if not entry.refine:
                entry.deliver(_edge(entry.outcome, entry.hard, TIMEOUT))
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._cloud.close()


def _settings_rule(settings: OffloadSettings) -> Rule:
    if settings.target_rate > 0.0:
        return Rule(settings.policy, rate=settings.target_rate)
    return Rule(settings.policy, threshold=settings.threshold)


def _edge(outcome: Outcome, hard: list[int], fallback: str) -> Outcome:
    hard_set = set(hard)
    return outcome._replace(
        results=tuple(
            replace(
                result,
                source=Source.EDGE,
                hard=i in hard_set,
                fallback=fallback if i in hard_set else "",
                model=outcome.model,
            )
            for i, result in enumerate(outcome.results)
        ),
    )


def _shape(pixels: npt.NDArray[np.uint8]) -> list[int]:
    return list(pixels.shape) if pixels.ndim == 3 else [*pixels.shape, 1]


def _joined(entry: _Waiting, rows: Sequence[tuple[float, ...]], model: ModelRef) -> Outcome:
    """The edge's outcome with each hard face's answer replaced by the cloud's row."""
    edge = _edge(entry.outcome, entry.hard, "")
    results = list(edge.results)
    for i, row in zip(entry.hard, rows, strict=True):  # ascending, as the rows were asked for
        best = max(range(len(row)), key=row.__getitem__)
        results[i] = FaceResult(
            entry.labels[best], best, row[best], row, Source.CLOUD, "", True, model
        )
    return edge._replace(results=tuple(results))
