"""The interpreter's thread count, chosen by measurement on the machine as it is.

Edge nodes are shared. An interpreter with two threads is faster on an idle 2-core node and
several times slower when another process keeps one core busy (its threads wait for each
other); a larger model can be faster on one thread even when idle. So no count is right by
default: each candidate is timed at warm-up, the fastest serves, and while serving the others
are tried now and then on a few real batches (stopping at the first that is clearly slower),
so that a neighbour starting or stopping moves the choice within seconds. Counts that cost
about the same per face go to the larger at warm-up; while serving, the count moves only to
one that is cheaper by more than that margin, so noise does not flip it back and forth.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_ALPHA = 0.3  # weight of a new batch in a candidate's running cost
_CLEARLY_SLOWER = 1.5  # an explored batch this much dearer per face ends the exploration
# More threads serve while they cost at most this much more per face than the cheapest: at full
# load on an idle node two threads measured nearly the same per face as one but answered more
# faces (bench.ab; docs/benchmarks.md), and measurements this close are noise that would flip
# the choice.
_SAME = 1.15


class ThreadChoice:
    """Which of ``candidates`` to run the next batch with, from per-face costs seen so far.

    Args:
        candidates: Thread counts to choose from (one: fixed, nothing is explored).
        explore_every_s: How often a candidate other than the best is tried while serving.
        explore_batches: Most batches a try runs.
        clock: Monotonic clock (injected by tests).
    """

    def __init__(
        self,
        candidates: tuple[int, ...],
        *,
        explore_every_s: float = 30.0,
        explore_batches: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not candidates:
            raise ValueError("no thread counts to choose from")
        self.candidates = candidates
        self._costs: dict[int, float] = {}
        self._floor: dict[int, float] = {}  # the lowest running cost each candidate has shown
        self._best = candidates[0]
        self._every_s = explore_every_s
        self._batches = explore_batches
        self._clock = clock
        self._explored_at = clock()
        self._exploring: int | None = None
        self._left = 0
        self._next = 0

    @property
    def best(self) -> int:
        """The thread count with the lowest cost per face so far."""
        return self._best

    @property
    def exploring(self) -> int | None:
        """The count being tried now, if any."""
        return self._exploring

    @property
    def costs(self) -> dict[int, float]:
        """Seconds per face of each candidate measured so far."""
        return dict(self._costs)

    def seed(self, threads: int, per_face_s: float) -> None:
        """A warm-up measurement: replaces what was known of ``threads``."""
        self._costs[threads] = self._floor[threads] = per_face_s
        self._best = self._preferred()

    def threads(self) -> int:
        """The thread count for the next batch (the best, or one being tried)."""
        if self._exploring is not None:
            return self._exploring
        if len(self.candidates) > 1 and self._due():
            others = [c for c in self.candidates if c != self._best]
            self._exploring = others[self._next % len(others)]
            self._next += 1
            self._left = self._batches
            return self._exploring
        return self._best

    def _due(self) -> bool:
        since = self._clock() - self._explored_at
        if since >= self._every_s:
            return True
        # The best got much dearer than it was (a neighbour started): look again soon.
        best = self._best
        return since >= 1.0 and self._costs.get(best, 0.0) > _CLEARLY_SLOWER * self._floor.get(
            best, float("inf")
        )

    def record(self, threads: int, faces: int, seconds: float) -> None:
        """A batch of ``faces`` ran on ``threads`` threads in ``seconds``."""
        if faces <= 0:
            return
        cost = seconds / faces
        known = self._costs.get(threads)
        self._costs[threads] = cost if known is None else known + _ALPHA * (cost - known)
        # The floor follows the running cost, not single batches: one lucky batch beside a
        # lasting neighbour would otherwise bring the early retry back within a second.
        self._floor[threads] = min(self._floor.get(threads, cost), self._costs[threads])
        ended = False
        if self._exploring == threads:
            self._left -= 1
            incumbent = self._costs.get(self._best, cost)
            if self._left <= 0 or cost >= _CLEARLY_SLOWER * incumbent:
                self._exploring = None
                self._explored_at = self._clock()
                ended = True
        preferred = self._preferred()
        # Hysteresis: the serving count moves only for one that is cheaper by more than noise.
        if self._costs.get(self._best, float("inf")) > _SAME * self._costs[preferred]:
            self._best = preferred
        if ended:
            # What the serving count costs now is the new normal: the next early retry waits
            # for it to get dearer again, not for a neighbour that has already been weighed.
            self._floor[self._best] = self._costs[self._best]

    def _preferred(self) -> int:
        cheapest = min(self._costs.values())
        return max(t for t, cost in self._costs.items() if cost <= _SAME * cheapest)
