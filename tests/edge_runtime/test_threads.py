"""The interpreter's thread count follows the machine: measured, retried, never fixed."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.backends import open_model_files
from edge_runtime.backends.litert import LiteRtModel, thread_candidates
from edge_runtime.backends.threads import ThreadChoice
from edge_runtime.manifest import read_manifest
from edge_runtime.settings import BackendKind


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
    clock.now += 30
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


def test_a_neighbour_once_weighed_is_not_weighed_again_every_second() -> None:
    clock = Clock()
    choice = ThreadChoice((1, 2), clock=clock)
    choice.seed(1, 0.40e-3)
    choice.seed(2, 0.25e-3)
    # A lasting neighbour: both dearer than at warm-up, two threads still the better.
    used = _serve(choice, clock, {1: 0.9e-3, 2: 0.6e-3}, 2000)  # 20 s of batches
    tries = sum(1 for a, b in itertools.pairwise(used) if (a, b) == (2, 1))
    assert tries <= 2, "tried once when the costs rose, not once a second"


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


def test_the_model_keeps_only_the_serving_counts_interpreters(registry: Path) -> None:
    manifest = read_manifest(registry / "emotion" / "1.0.0" / "manifest.json")
    model = open_model_files(manifest, "float32", BackendKind.LITERT, threads=0, max_batch=4)
    try:
        assert isinstance(model, LiteRtModel)
        model.warm_up()
        kept = set(model._interpreters)
        assert kept == {(model.thread_choices[b].best, b) for b in (1, 2, 4)}
        choice = model.thread_choices[1]
        if len(choice.candidates) < 2:
            pytest.skip("one core: nothing to choose")
        choice._explored_at = -1e9  # a retry is due
        faces = np.zeros((1, 64, 64, 1), np.float32)
        for _ in range(8):  # the retry's batches, then serving again
            model.predict_now(faces)
        assert choice.exploring is None
        assert set(model._interpreters) == {(model.thread_choices[b].best, b) for b in (1, 2, 4)}, (
            "the count tried and not kept was freed"
        )
    finally:
        model.close()


def test_noisy_costs_beside_a_lasting_neighbour_do_not_bring_retries_every_second() -> None:
    clock = Clock()
    choice = ThreadChoice((1, 2), clock=clock)
    choice.seed(1, 0.40e-3)
    choice.seed(2, 0.25e-3)
    noisy = [0.35e-3, 0.9e-3, 0.5e-3, 0.8e-3]  # two threads beside a neighbour: up and down
    tries = 0
    for index in range(2000):  # 20 s of batches
        threads = choice.threads()
        cost = noisy[index % len(noisy)] if threads == 2 else 1.2e-3
        choice.record(threads, 8, 8 * cost)
        tries += threads == 1
        clock.now += 0.01
    assert tries <= 4 * 3, f"{tries} batches on the other count in 20 s"


async def test_a_batch_given_a_thread_count_runs_on_it_and_leaves_the_choice_alone(
    registry: Path,
) -> None:
    manifest = read_manifest(registry / "emotion" / "1.0.0" / "manifest.json")
    model = open_model_files(manifest, "float32", BackendKind.LITERT, threads=2, max_batch=4)
    try:
        assert isinstance(model, LiteRtModel)
        model.warm_up()
        faces = np.random.default_rng(0).uniform(0, 1, (5, 64, 64, 1)).astype(np.float32)
        chosen = model.predict_now(faces)
        costs = {b: model.thread_choices[b].costs for b in (1, 2, 4)}
        alone = await model.predict(faces, threads=1)  # off the loop, one interpreter thread
        np.testing.assert_allclose(alone, chosen, atol=1e-5)
        assert {(1, 4), (1, 1)} <= set(model._interpreters)  # 5 faces ran as 4 + 1
        assert {b: model.thread_choices[b].costs for b in (1, 2, 4)} == costs
    finally:
        model.close()
