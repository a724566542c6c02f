"""The incremental-learning loop on its own: wait for hard examples, retrain, canary, promote.

Each cycle waits until the serving version has sent enough new hard examples (examples whose
``edge_model`` is the serving version: what *it* finds hard), retrains (``retrain``: registered
only when better on the held-out set), and rolls the new version out with the canary policy
(``push``: rolled back on a failed load, an unhealthy soak or a risen offload rate). A version
that is not better or whose canary failed leaves the serving version in place; the next cycle
waits for more examples.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cloud_trainer.push import CanaryPolicy, RolloutFailed, TwinBackend, desired_twins, rollout
from cloud_trainer.registry import versions
from cloud_trainer.retrain import RetrainError, RetrainPlan, retrain
from cloud_trainer.samples import read_samples
from cloud_trainer.training import TrainConfig


@dataclass(frozen=True, slots=True)
class Cycle:
    """What one cycle did."""

    serving: str  # the version served when it began
    candidate: str
    examples: int  # hard examples of the serving version it waited for
    serving_accuracy: float
    candidate_accuracy: float
    outcome: str  # promoted, not better, rolled back: <why>

    def line(self) -> str:
        """One line for a log."""
        return (
            f"{self.serving} -> {self.candidate}: held-out accuracy {self.serving_accuracy:.1%}"
            f" -> {self.candidate_accuracy:.1%} on {self.examples} new hard examples: "
            f"{self.outcome}"
        )


@dataclass(frozen=True, slots=True)
class Rollout:
    """Where versions go and how canaries are judged."""

    backend: TwinBackend
    devices: Sequence[str]
    store_url: str
    policy: CanaryPolicy


def next_version(registry: Path, name: str, serving: str) -> str:
    """The serving version with its last number raised, past every registered version."""
    taken = set(versions(registry, name))
    match = re.fullmatch(r"(.*?)(\d+)", serving)
    stem, number = (match.group(1), int(match.group(2))) if match else (f"{serving}.", 0)
    candidate = f"{stem}{number + 1}"
    while candidate in taken:
        number += 1
        candidate = f"{stem}{number + 1}"
    return candidate


class EdgeVersions:
    """Which edge version found each stored example hard; each file is read once."""

    def __init__(self, samples: Path) -> None:
        self._samples = samples
        self._versions: dict[str, str] = {}  # example name -> edge model version

    def count(self, version: str) -> int:
        """Stored examples that ``version`` found hard."""
        for sample in read_samples(self._samples, skip=self._versions):
            self._versions[sample.sha256] = sample.example.edge_model.version
        return sum(1 for v in self._versions.values() if v == version)


def run(
    plan: RetrainPlan,
    config: TrainConfig,
    target: Rollout,
    *,
    cycles: int,
    min_new_examples: int,
    runs: Path,
    poll_s: float = 5.0,
    timeout_s: float = 3600.0,
    log: Callable[[str], None] = print,
) -> list[Cycle]:
    """Run ``cycles`` cycles from ``plan.serving``; the cycles' records.

    ``plan.version`` is ignored: each candidate is the next free version.

    Raises:
        TimeoutError: the serving version sent too few examples within ``timeout_s``.
    """
    serving, used = plan.serving, 0  # used: the serving version's examples a cycle had
    versions = EdgeVersions(plan.samples)
    done: list[Cycle] = []
    for number in range(1, cycles + 1):
        deadline = time.monotonic() + timeout_s
        while (count := versions.count(serving)) - used < min_new_examples:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{serving} sent {count} hard examples in {timeout_s:.0f} s "
                    f"({min_new_examples} wanted)"
                )
            time.sleep(poll_s)
        candidate = next_version(plan.registry, plan.name, serving)
        log(f"cycle {number}: {count} hard examples of {serving}: retraining as {candidate}")
        step = replace(plan, serving=serving, version=candidate)
        try:
            result = retrain(step, config, runs / f"cycle-{number}-{candidate}")
        except RetrainError as exc:
            log(f"cycle {number}: {exc}")
            used = count
            continue
        outcome = "not better"
        if result.registered:
            values = desired_twins(plan.registry, plan.name, candidate, target.store_url)
            try:
                rollout(target.backend, target.devices, values, target.policy, log)
                outcome = "promoted"
            except RolloutFailed as exc:
                outcome = f"rolled back: {exc}"
        cycle = Cycle(
            serving,
            candidate,
            count,
            result.serving_accuracy,
            result.candidate_accuracy,
            outcome,
        )
        log(f"cycle {number}: {cycle.line()}")
        done.append(cycle)
        if outcome == "promoted":
            serving, used = candidate, 0
        else:
            used = count  # the next try waits for more of the same version's examples
    return done
