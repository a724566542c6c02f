"""How hard a face is for a model: a score per policy, lower is harder.

The contract between the trainer, which measures how a model version's scores spread over
calibration faces (``quantiles``, shipped in the manifest), and the runtime, which offloads the
faces scoring below a threshold (given, or fitted to a target offload rate: ``threshold_at``).

A face is hard when its score is below the threshold. ``margin`` is the top-1 minus the top-2
probability, ``max_prob`` the top-1, ``entropy`` 1 - H(p)/ln K as Sedna's CrossEntropy filter
defines it (``0 · ln 0`` taken as 0: Sedna's crashes on an exact zero, which full-int8 models
give often), ``random`` a uniform draw (the threshold is then the offload rate), ``always`` and
``never`` what they say.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import random
from collections.abc import Sequence

PERCENTS = 101  # the manifest's at_percent: 0 %, 1 %, ..., 100 %


class Policy(enum.StrEnum):
    """Which score decides that a face is hard."""

    MARGIN = "margin"
    MAX_PROB = "max_prob"
    ENTROPY = "entropy"
    RANDOM = "random"
    ALWAYS = "always"
    NEVER = "never"

    @property
    def calibrated(self) -> bool:
        """Whether the score depends on the model (and a manifest can hold its quantiles)."""
        return self in (Policy.MARGIN, Policy.MAX_PROB, Policy.ENTROPY)


def score(policy: Policy, probabilities: Sequence[float], rng: random.Random) -> float:
    """The face's score under ``policy`` (lower: harder)."""
    if policy is Policy.MARGIN:
        first = second = 0.0
        for p in probabilities:
            if p > first:
                first, second = p, first
            elif p > second:
                second = p
        return first - second
    if policy is Policy.MAX_PROB:
        return max(probabilities, default=0.0)
    if policy is Policy.ENTROPY:
        k = len(probabilities)
        if k < 2:
            return 1.0
        entropy = -sum(p * math.log(p) for p in probabilities if p > 0.0)
        return 1.0 - entropy / math.log(k)
    if policy is Policy.RANDOM:
        return rng.random()
    return -math.inf if policy is Policy.ALWAYS else math.inf


def quantiles(scores: Sequence[float]) -> tuple[float, ...]:
    """The 0th to 100th percentile of ``scores`` (linear interpolation), as manifests hold them.

    Raises:
        ValueError: if ``scores`` is empty.
    """
    ordered = sorted(scores)
    if not ordered:
        raise ValueError("no scores to take quantiles of")
    last = len(ordered) - 1
    out = []
    for percent in range(PERCENTS):
        position = percent / (PERCENTS - 1) * last
        low = math.floor(position)
        high = min(low + 1, last)
        out.append(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
    return tuple(out)


def threshold_at(at_percent: Sequence[float], rate: float) -> float:
    """The threshold below which a share ``rate`` (0-1) of the calibration faces score.

    ``rate`` 0 gives a threshold no face is below; 1, one every face is below.

    Raises:
        ValueError: if ``at_percent`` does not hold 101 non-decreasing values, or ``rate`` is
            outside 0-1.
    """
    if len(at_percent) != PERCENTS or any(b < a for a, b in itertools.pairwise(at_percent)):
        raise ValueError(f"expected {PERCENTS} non-decreasing percentiles")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate {rate} outside 0-1")
    if rate <= 0.0:
        return -math.inf
    if rate >= 1.0:
        return math.inf
    position = rate * (PERCENTS - 1)
    low = math.floor(position)
    high = min(low + 1, PERCENTS - 1)
    return at_percent[low] + (at_percent[high] - at_percent[low]) * (position - low)


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """Which faces are hard: a policy, and a threshold or a target offload rate.

    As a twin value (``offload_policy``; KubeEdge's value pattern allows no JSON):
    ``margin``, ``margin,threshold:0.25`` or ``entropy,rate:0.2``. Reported, the rule in force
    also names the threshold a rate was fitted to: ``entropy,rate:0.2,threshold:0.4137``
    (read back, the rate wins).
    """

    policy: Policy
    threshold: float | None = None
    rate: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Read a twin value.

        Raises:
            ValueError: naming what is wrong.
        """
        name, *options = text.strip().split(",")
        try:
            policy = Policy(name)
        except ValueError:
            known = ", ".join(p.value for p in Policy)
            raise ValueError(f"unknown policy {name!r} (known: {known})") from None
        values: dict[str, float] = {}
        for option in options:
            key, sep, raw = option.partition(":")
            if not sep or key not in ("threshold", "rate") or key in values:
                raise ValueError(f"{option!r}: expected threshold:X or rate:R, once each")
            try:
                values[key] = float(raw)
            except ValueError:
                raise ValueError(f"{option!r}: {raw!r} is not a number") from None
            if not math.isfinite(values[key]):
                raise ValueError(f"{option!r}: not a finite number")
        rate = values.get("rate")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {rate:g} outside 0-1")
        return cls(policy, values.get("threshold"), rate)

    def __str__(self) -> str:
        parts = [self.policy.value]
        if self.rate is not None:
            parts.append(f"rate:{self.rate:g}")
        if self.threshold is not None and math.isfinite(self.threshold):
            parts.append(f"threshold:{self.threshold:.4g}")
        return ",".join(parts)
