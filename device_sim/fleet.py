"""Run a scenario's cameras: in this process with asyncio, or spread over processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import traceback
from collections.abc import Callable
from typing import Any

from rich.console import Console

from device_sim.camera import Camera, CameraConfig
from device_sim.live import LiveView, add_snapshots
from device_sim.scenario import Scenario
from device_sim.sources import open_source
from device_sim.stats import FleetStats
from edge_runtime import Response

AnswerObserver = Callable[[str, Response, int | None], None]
_SNAPSHOT_PERIOD_S = 1.0


async def run_cameras(
    cameras: list[tuple[CameraConfig, str]],
    duration_s: float,
    stats: FleetStats,
    on_answer: AnswerObserver | None = None,
) -> None:
    """Run cameras concurrently in this event loop until all have finished."""
    async with asyncio.TaskGroup() as tg:
        for config, source in cameras:
            camera = Camera(config, stats, open_source(source, config.seed), on_answer)
            tg.create_task(camera.run(duration_s), name=f"fleet.camera[{config.name}]")


async def _with_snapshots(
    cameras: list[tuple[CameraConfig, str]],
    duration_s: float,
    stats: FleetStats,
    on_snapshot: Callable[[dict[str, Any]], None],
    on_answer: AnswerObserver | None = None,
) -> None:
    fleet = asyncio.create_task(run_cameras(cameras, duration_s, stats, on_answer))
    try:
        while not fleet.done():
            await asyncio.wait([fleet], timeout=_SNAPSHOT_PERIOD_S)
            on_snapshot(stats.snapshot())
    finally:
        fleet.cancel()
    await fleet


def _child(
    cameras: list[tuple[CameraConfig, str]],
    duration_s: float,
    started: float,
    outbox: multiprocessing.Queue[tuple[int, str, Any]],
    index: int,
) -> None:
    """A fleet process: runs its cameras, streams snapshots, sends its stats at the end."""
    stats = FleetStats(started=started)
    try:
        asyncio.run(
            _with_snapshots(
                cameras, duration_s, stats, lambda s: outbox.put((index, "snapshot", s))
            )
        )
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        outbox.put((index, "error", traceback.format_exc()))
        return
    outbox.put((index, "done", stats.export()))


async def _run_processes(
    scenario: Scenario,
    cameras: list[tuple[CameraConfig, str]],
    stats: FleetStats,
    on_snapshot: Callable[[dict[str, Any]], None],
) -> None:
    context = multiprocessing.get_context("spawn")  # no forked event loops or paho threads
    outbox: multiprocessing.Queue[tuple[int, str, Any]] = context.Queue()
    count = min(scenario.processes, len(cameras))
    processes = [
        context.Process(
            target=_child,
            args=(cameras[i::count], scenario.duration_s, stats.started, outbox, i),
            name=f"device-sim-{i}",
            daemon=True,
        )
        for i in range(count)
    ]
    for process in processes:
        process.start()
    snapshots: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    errors: list[str] = []
    try:
        while len(finished) < count:
            try:
                index, kind, body = await asyncio.to_thread(outbox.get, True, 1.0)
            except queue.Empty:
                dead = [
                    p for i, p in enumerate(processes) if i not in finished and not p.is_alive()
                ]
                if dead and outbox.empty():
                    raise RuntimeError(f"fleet process {dead[0].name} died") from None
                continue
            if kind == "snapshot":
                snapshots[index] = body
                on_snapshot(add_snapshots(snapshots))
            else:
                finished.add(index)
                if kind == "error":
                    errors.append(body)
                else:
                    stats.merge(body)
    finally:
        for process in processes:
            if process.is_alive() and len(finished) < count:
                process.terminate()
            process.join(5)
    if errors:
        raise RuntimeError("a fleet process failed:\n" + errors[0])


async def run_scenario(
    scenario: Scenario,
    *,
    console: Console | None = None,
    on_answer: AnswerObserver | None = None,
) -> FleetStats:
    """Run every camera of ``scenario``; with a console, show a live table meanwhile."""
    stats = FleetStats()
    cameras = scenario.cameras()
    view = LiveView(console, f"fleet: {len(cameras)} cameras") if console else None

    def show(snapshot: dict[str, Any]) -> None:
        if view is not None:
            view.update(snapshot)

    if view is not None:
        view.__enter__()
    try:
        if scenario.processes > 1:
            await _run_processes(scenario, cameras, stats, show)
        else:
            await _with_snapshots(cameras, scenario.duration_s, stats, show, on_answer)
    finally:
        if view is not None:
            view.__exit__()
    return stats
