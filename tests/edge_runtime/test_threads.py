"""The interpreter's thread count follows the machine: measured, retried, never fixed."""

from __future__ import annotations

import itertools

import pytest

from edge_runtime.backends.litert import thread_candidates
from edge_runtime.backends.threads import ThreadChoice


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _serve(choice: ThreadChoice, clock: Clock, cost: dict[int, float], batches: int) -> list[int]:
    used = []
    for _ in range(batches):
        threads = choice.threads()
        used.append(threads)
        choice.record(threads, 8, 8 * cost[threads])
        clock.now += 0.01
    return used


def test_the_fastest_at_warm_up_serves() -> None:
    choice = ThreadChoice((1, 2), clock=Clock())
    choice.seed(1, 0.40e-3)
    choice.seed(2, 0.25e-3)
    assert choice.best == 2
    assert choice.threads() == 2


def test_a_busy_neighbour_moves_the_choice_within_seconds() -> None:
    clock = Clock()
    choice = ThreadChoice((1, 2), clock=clock)
    choice.seed(1, 0.40e-3)
    choice.seed(2, 0.25e-3)
    _serve(choice, clock, {1: 0.40e-3, 2: 0.25e-3}, 50)
    assert choice.best == 2
    # A neighbour takes a core: two threads wait for each other, one thread barely notices.
    used = _serve(choice, clock, {1: 0.45e-3, 2: 1.7e-3}, 300)
    assert used[-1] == 1
    assert used.index(1) < 200, "the choice moved in under two seconds of batches"
    # And back when the neighbour stops (the periodic retry).
    clock.now += 10
    used = _serve(choice, clock, {1: 0.40e-3, 2: 0.25e-3}, 50)
    assert used[-1] == 2


def test_a_clearly_slower_candidate_is_tried_on_one_batch_only() -> None:
    clock = Clock()
    choice = ThreadChoice((1, 2), explore_every_s=1.0, explore_batches=4, clock=clock)
    choice.seed(1, 0.40e-3)
    choice.seed(2, 0.25e-3)
    used = _serve(choice, clock, {1: 2.0e-3, 2: 0.25e-3}, 500)
    tries = [i for i, t in enumerate(used) if t == 1]
    assert 1 <= len(tries) <= 5  # about once a second for five seconds
    assert all(b - a > 1 for a, b in itertools.pairwise(tries))


def test_one_candidate_is_never_explored() -> None:
    clock = Clock()
    choice = ThreadChoice((3,), clock=clock)
    assert set(_serve(choice, clock, {3: 1e-3}, 3000)) == {3}


def test_candidates_are_the_setting_or_every_count_up_to_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert thread_candidates(3) == (3,)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert thread_candidates(0) == (1, 2)
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert thread_candidates(0) == (1, 2, 3, 4)


def test_counts_that_cost_about_the_same_go_to_the_larger() -> None:
    clock = Clock()
    choice = ThreadChoice((1, 2), clock=clock)
    choice.seed(1, 0.76e-3)
    choice.seed(2, 0.80e-3)  # within noise of one thread: two answer more at full load
    assert choice.best == 2
    choice.seed(2, 1.2e-3)  # clearly dearer: a neighbour, or a model that does not split
    assert choice.best == 1


def test_noise_around_the_margin_does_not_flip_the_choice() -> None:
    clock = Clock()
    choice = ThreadChoice((1, 2), clock=clock)
    choice.seed(1, 0.80e-3)
    choice.seed(2, 0.85e-3)
    assert choice.best == 2
    costs = [0.80e-3, 0.95e-3, 0.85e-3, 0.90e-3] * 50  # within the margin, up and down
    used = []
    for cost in costs:
        threads = choice.threads()
        used.append(threads)
        choice.record(threads, 2, 2 * cost)
        clock.now += 0.05
    changes = sum(1 for a, b in itertools.pairwise(used) if a != b)
    assert changes <= 4, used
