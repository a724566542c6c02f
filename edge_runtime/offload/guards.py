"""What keeps a sick or slow cloud from costing the edge: a circuit breaker and a rate limit."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class Circuit(enum.StrEnum):
    """A breaker's state."""

    CLOSED = "closed"  # offloads go out
    OPEN = "open"  # none go out until the cool-down ends
    HALF_OPEN = "half_open"  # one probe goes out; its result closes or opens the breaker


class CircuitBreaker:
    """Opens after ``failures`` failed offloads in a row; after ``open_s``, lets one probe through.

    Args:
        failures: Consecutive failures that open the breaker.
        open_s: How long it stays open before a probe.
        clock: Monotonic clock.
    """

    def __init__(
        self, failures: int, open_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._failures = failures
        self._open_s = open_s
        self._clock = clock
        self._count = 0
        self._opened_at = 0.0
        self._probing = False
        self.state = Circuit.CLOSED

    def allow(self) -> bool:
        """Whether an offload may go out now (half-open: one at a time)."""
        if self.state is Circuit.CLOSED:
            return True
        if self.state is Circuit.OPEN and self._clock() - self._opened_at >= self._open_s:
            self.state = Circuit.HALF_OPEN
            self._probing = False
        if self.state is Circuit.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def unused(self) -> None:
        """The offload ``allow`` let through did not go out after all (the rate limit)."""
        self._probing = False

    def success(self) -> None:
        """An offload was answered."""
        self.state, self._count, self._probing = Circuit.CLOSED, 0, False

    def failure(self) -> None:
        """An offload failed or timed out."""
        self._count += 1
        if self.state is Circuit.HALF_OPEN or self._count >= self._failures:
            self.state, self._opened_at, self._probing = Circuit.OPEN, self._clock(), False


class TokenBucket:
    """At most ``rate`` faces a second on average, ``burst`` at once (0: no limit).

    Args:
        rate: Tokens added per second.
        burst: Most tokens held.
        clock: Monotonic clock.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def take(self, count: int) -> bool:
        """Take ``count`` tokens if there are that many."""
        if self._rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True
