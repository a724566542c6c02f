"""The simulated fleet against a real runtime and mosquitto: every request answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from device_sim.camera import Camera, CameraConfig, Mode
from device_sim.fleet import run_scenario
from device_sim.scenario import build_scenario
from device_sim.stats import FleetStats
from edge_runtime import Response
from edge_runtime.settings import Settings
from edgeinfer.faces import EMOTIONS
from tests.support.broker import Broker
from tests.support.runtime import make_settings, running_runtime

pytestmark = pytest.mark.integration


async def _run_fleet(
    settings: Settings,
    broker: Broker,
    stats: FleetStats,
    prefix: str,
    cameras: int,
    duration_s: float,
    on_answer: Callable[[str, Response, int | None], None] | None = None,
    **config: Any,
) -> None:
    """``cameras`` cameras against a runtime started for the run, until they finish."""
    async with running_runtime(settings), asyncio.TaskGroup() as tg:
        for index in range(cameras):
            camera = CameraConfig(
                name=f"{prefix}-{index}",
                broker=broker.url,
                runtime_id=settings.runtime_id,
                topic_root=settings.topic_root,
                seed=index,
                **config,
            )
            tg.create_task(Camera(camera, stats, on_answer=on_answer).run(duration_s))


async def test_fleet_gets_every_answer_with_consistent_counts(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    stats = FleetStats()
    labels: list[str] = []

    def on_answer(_camera: str, response: Response, _label: int | None) -> None:
        labels.extend(result.label for result in response.results)

    await _run_fleet(settings, broker, stats, f"{unique}-cam", 4, 2.0, on_answer, fps=10)
    summary = stats.summary()
    assert summary["sent"] >= 4 * 10  # about 4 cameras x 10 fps x 2 s
    assert summary["answered"] == summary["sent"]
    assert summary["statuses"] == {"OK": summary["sent"]}
    assert (summary["failed"], summary["lost"]) == (0, 0)
    assert stats.histogram.get_total_count() == summary["answered"]
    assert len(stats.timeline) == summary["answered"]
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99_9"]
    assert latency["p99_9"] <= latency["max"] * 1.001  # HdrHistogram rounds to 3 digits
    assert summary["answers_by_model_version"] == {"1.0.0": summary["answered"]}
    assert 0.0 <= summary["accuracy_by_model_version"]["1.0.0"] <= 1.0
    assert len(labels) == summary["answered"]
    assert set(labels) <= set(EMOTIONS)


async def test_fault_injection_gets_invalid_argument_and_nothing_else(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    stats = FleetStats()
    await _run_fleet(
        settings, broker, stats, f"{unique}-faulty", 3, 1.5, fps=20, malformed_rate=0.3
    )
    summary = stats.summary()
    assert summary["injected"] > 0
    assert summary["injected_statuses"] == {"INVALID_ARGUMENT": summary["injected"]}
    genuine = summary["sent"] - summary["injected"]
    assert summary["statuses"] == {"OK": genuine}  # everyone else is served normally
    assert (summary["failed"], summary["lost"]) == (0, 0)
    assert summary["answered"] == summary["sent"]
    assert stats.histogram.get_total_count() == genuine


async def test_closed_loop_keeps_requests_in_flight_and_loses_none(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    stats = FleetStats()
    await _run_fleet(
        settings, broker, stats, f"{unique}-closed", 2, 1.5, mode=Mode.CLOSED, in_flight=8
    )
    summary = stats.summary()
    assert summary["sent"] >= 2 * 8 * 5  # far more than open loop at 2 fps would send
    assert summary["answered"] == summary["sent"]
    assert (summary["failed"], summary["lost"]) == (0, 0)


async def test_dropped_connections_lose_no_answers(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    stats = FleetStats()
    await _run_fleet(
        settings,
        broker,
        stats,
        f"{unique}-flaky",
        3,
        3.0,
        mode=Mode.CLOSED,
        in_flight=4,
        disconnect_every_s=0.8,
        disconnect_for_s=0.3,
    )
    summary = stats.summary()
    assert summary["disconnects"] >= 3
    assert summary["answered"] == summary["sent"] > 0
    assert (summary["failed"], summary["lost"]) == (0, 0)


async def test_fleet_across_processes_merges_its_measurements(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    scenario = build_scenario(
        {
            "broker": broker.url,
            "runtime_id": settings.runtime_id,
            "topic_root": settings.topic_root,
            "duration_s": 2.0,
            "processes": 2,
            "groups": [{"name": f"p{unique}", "count": 4, "fps": 10}],
        }
    )
    async with running_runtime(settings):
        stats = await run_scenario(scenario)
    summary = stats.summary()
    assert summary["sent"] >= 4 * 10
    assert summary["answered"] == summary["sent"]
    assert (summary["failed"], summary["lost"]) == (0, 0)
    assert stats.histogram.get_total_count() == summary["answered"]
    assert len(stats.timeline) == summary["answered"]
    assert [e["event"] for e in summary["events"]] == ["first answer from 1.0.0"]


async def test_a_closed_loop_fleet_loses_nothing_on_kubeedges_mosquitto(broker16, registry, unique):
    """30 cameras keeping 20 requests each in flight on mosquitto 1.6.15 with its defaults:
    the broker drops past its limits, the cameras' client retries, nothing is lost."""
    settings = make_settings(broker16.url, registry, unique)
    stats = FleetStats()
    await _run_fleet(
        settings,
        broker16,
        stats,
        f"{unique}-burst",
        30,
        3.0,
        mode=Mode.CLOSED,
        in_flight=20,
        answer_timeout_s=30.0,
    )
    summary = stats.summary()
    assert summary["sent"] >= 600
    assert (summary["failed"], summary["lost"]) == (0, 0), summary
    assert summary["answered"] == summary["sent"]
    print(f"sent {summary['sent']}, retries {summary['retries']}")
