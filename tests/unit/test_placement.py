"""Placement: batches leave the loop thread only while it is saturated by its own work."""

from __future__ import annotations

import asyncio

import numpy as np

from edge_runtime.batching import BatchOutcome, Job, MicroBatcher
from edge_runtime.messages import FacePixels
from edge_runtime.placement import WORKER_THREADS, Placement
from edge_runtime.testing import FakeModel


class Clocks:
    """Wall and loop-thread CPU clocks the test moves by hand."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def window(self, p: Placement, busy: float, model_share: float, faces: int) -> bool:
        """One second in which the loop thread was busy ``busy`` of it, the model took
        ``model_share`` of it (on the loop or the worker) and ``faces`` were answered; what
        ``ran`` said at the window's end."""
        self.wall += 1.0
        self.cpu += busy
        return p.ran(model_share, faces)


def placement(clocks: Clocks) -> Placement:
    return Placement(window_s=1.0, clock=lambda: clocks.wall, cpu=lambda: clocks.cpu)


# Windows as measured here (docs/benchmarks.md), one second each: (busy, model share, faces).
MQTT_ON_LOOP = (0.97, 0.72, 2200)  # the model most of the loop's work
MQTT_OFF_LOOP = (0.2, 0.95, 1566)  # one interpreter thread the bottleneck
TF_ON_LOOP = (1.0, 0.25, 690)  # JSON and HTTP most of it
TF_OFF_LOOP = (0.95, 0.5, 935)
OIP_ON_LOOP = (0.99, 0.45, 1050)
OIP_OFF_LOOP = (0.6, 0.97, 1200)  # the worker saturated, yet more faces than on the loop


def moves_after(
    clocks: Clocks, p: Placement, windows: int, figures: tuple[float, float, int]
) -> None:
    """The batches move at the ``windows``-th window of ``figures``, not before."""
    for _ in range(windows - 1):
        assert not clocks.window(p, *figures)
    assert clocks.window(p, *figures)


def moved_off(clocks: Clocks, p: Placement, on_loop: tuple[float, float, int]) -> None:
    moves_after(clocks, p, 2, on_loop)  # one window is a burst, not a load
    assert not p.on_loop


def test_batches_stay_on_the_loop_while_the_model_is_most_of_its_work() -> None:
    clocks = Clocks()
    p = placement(clocks)
    for _ in range(5):
        assert not clocks.window(p, *MQTT_ON_LOOP)
    assert p.on_loop


def test_a_loop_saturated_by_its_own_work_moves_batches_off_after_two_windows() -> None:
    for on_loop in (TF_ON_LOOP, OIP_ON_LOOP):
        clocks = Clocks()
        moved_off(clocks, placement(clocks), on_loop)


def test_off_the_loop_they_stay_while_the_two_stages_answer_more() -> None:
    for on_loop, off_loop in ((TF_ON_LOOP, TF_OFF_LOOP), (OIP_ON_LOOP, OIP_OFF_LOOP)):
        clocks = Clocks()
        p = placement(clocks)
        moved_off(clocks, p, on_loop)
        for _ in range(5):
            assert not clocks.window(p, *off_loop)
        assert not p.on_loop


def test_they_come_back_when_the_worker_answers_fewer_than_the_loop_did() -> None:
    clocks = Clocks()
    p = placement(clocks)
    clocks.window(p, *MQTT_ON_LOOP)
    p.on_loop = False  # as if a burst of HTTP had moved them
    assert clocks.window(p, *MQTT_OFF_LOOP)  # one window: the loop's own work is light
    assert p.on_loop
    for _ in range(40):  # and the worker, measured, is not tried again
        assert not clocks.window(p, 1.0, 0.4, 2000)


def test_they_come_back_when_nothing_is_saturated_any_more() -> None:
    clocks = Clocks()
    p = placement(clocks)
    moved_off(clocks, p, TF_ON_LOOP)
    assert not clocks.window(p, 0.3, 0.1, 200)
    assert clocks.window(p, 0.3, 0.1, 200)
    assert p.on_loop


def test_a_loop_with_room_keeps_its_batches_however_small_the_model() -> None:
    clocks = Clocks()
    p = placement(clocks)
    for _ in range(5):
        clocks.window(p, 0.6, 0.05, 300)
    assert p.on_loop


def test_requests_that_take_turns_come_back_to_the_loop() -> None:
    # One request in flight: the loop and the worker take turns, nothing overlaps.
    clocks = Clocks()
    p = placement(clocks)
    moved_off(clocks, p, OIP_ON_LOOP)
    for _ in range(3):
        clocks.window(p, *OIP_OFF_LOOP)
    moves_after(clocks, p, 2, (0.45, 0.5, 320))
    assert p.on_loop
    # The load back: four windows now (they came back soon); the stint's best window counts.
    moves_after(clocks, p, 4, OIP_ON_LOOP)


def test_a_worker_figure_is_measured_again_after_a_minute() -> None:
    clocks = Clocks()
    p = placement(clocks)
    moved_off(clocks, p, OIP_ON_LOOP)
    clocks.window(p, 0.45, 0.5, 320)  # the load went as the batches left
    assert clocks.window(p, 0.45, 0.5, 320)
    for _ in range(30):
        assert not clocks.window(p, *OIP_ON_LOOP)  # 320 faces/s: not worth leaving for
    for _ in range(30):
        clocks.window(p, 0.5, 0.2, 300)
    moves_after(clocks, p, 4, OIP_ON_LOOP)  # forgotten: tried again (it came back soon)


def test_batches_that_come_back_soon_wait_twice_as_long_to_leave_again() -> None:
    # Noisy figures: the worker's best window beats the loop, its later ones do not.
    clocks = Clocks()
    p = placement(clocks)
    for needed in (2, 4, 8):
        moves_after(clocks, p, needed, (1.0, 0.2, 1000))  # off after `needed` windows
        clocks.window(p, 0.9, 0.8, 1200)
        clocks.window(p, 0.7, 0.8, 900)
        assert clocks.window(p, 0.7, 0.8, 900)  # back three windows later
        assert p.on_loop


def test_batches_that_stayed_off_a_while_leave_again_as_quickly() -> None:
    clocks = Clocks()
    p = placement(clocks)
    moved_off(clocks, p, TF_ON_LOOP)
    for _ in range(20):
        clocks.window(p, *TF_OFF_LOOP)
    clocks.window(p, 0.3, 0.1, 200)
    assert clocks.window(p, 0.3, 0.1, 200)
    moved_off(clocks, p, TF_ON_LOOP)


def test_one_window_that_disagrees_restarts_the_count() -> None:
    clocks = Clocks()
    p = placement(clocks)
    clocks.window(p, *TF_ON_LOOP)
    clocks.window(p, 0.5, 0.2, 300)
    assert not clocks.window(p, *TF_ON_LOOP)
    assert p.on_loop


def test_batches_within_a_window_only_add_up() -> None:
    clocks = Clocks()
    p = placement(clocks)
    clocks.cpu = 0.5
    clocks.wall = 0.5
    assert not p.ran(0.4, 100)  # half a window: nothing decided
    assert p.on_loop


async def test_off_the_loop_the_batcher_asks_the_model_for_one_thread() -> None:
    model, outcomes = FakeModel(), list[BatchOutcome]()
    clocks = Clocks()
    p = placement(clocks)
    b = MicroBatcher(
        lambda: model, max_size=4, max_wait_s=0.0, max_queue=8, request_timeout_s=5.0,
        placement=p,
    )  # fmt: skip
    face = (FacePixels(np.zeros((8, 8, 1), np.uint8)),)

    async def one() -> None:
        b.submit(Job(face, outcomes.append))
        async with asyncio.TaskGroup() as tg:
            serving = tg.create_task(b.serve())
            async with asyncio.timeout(2):
                await b.drain()
            serving.cancel()

    await one()
    assert model.threads_asked == []  # on the loop: predict_now
    p.on_loop = False
    await one()
    assert model.threads_asked == [WORKER_THREADS]
    assert all(isinstance(o, BatchOutcome) and o.error == "" for o in outcomes)


def test_a_batcher_told_to_run_off_the_loop_has_no_placement() -> None:
    b = MicroBatcher(
        lambda: None, max_size=4, max_wait_s=0.0, max_queue=8, request_timeout_s=5.0,
        on_loop=False, placement=Placement(),
    )  # fmt: skip
    assert b.placement is None


def test_another_load_whose_model_outweighs_the_loops_work_brings_them_back_at_once() -> None:
    # An HTTP stint, then MQTT traffic: faces/s higher than the HTTP loop's, yet the loop's own
    # work per face far below what the model costs on the loop.
    clocks = Clocks()
    p = placement(clocks)
    moved_off(clocks, p, TF_ON_LOOP)
    clocks.window(p, *TF_OFF_LOOP)
    assert clocks.window(p, *MQTT_OFF_LOOP)  # at once: a clear sign of another load
    assert p.on_loop
    for _ in range(5):
        assert not clocks.window(p, *MQTT_ON_LOOP)
    moved_off(clocks, p, TF_ON_LOOP)  # no wait added: the worker did not answer fewer
