"""How hard a face is for the edge's model: a score per policy, lower is harder.

A face is hard when its score is below the threshold. ``margin`` is the top-1 minus the top-2
probability, ``max_prob`` the top-1, ``entropy`` 1 - H(p)/ln K as Sedna's CrossEntropy filter
defines it (``0 · ln 0`` taken as 0: Sedna's crashes on an exact zero, which full-int8 models
give often), ``random`` a uniform draw (the threshold is then the offload rate), ``always`` and
``never`` what they say.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence


class Policy(enum.StrEnum):
    """Which score decides that a face is hard."""

    MARGIN = "margin"
    MAX_PROB = "max_prob"
    ENTROPY = "entropy"
    RANDOM = "random"
    ALWAYS = "always"
    NEVER = "never"


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
