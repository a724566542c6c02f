"""The runtime's own Python per request, above the socket: what a hot-path change is A/B'd on.

``python -m bench.overhead`` runs a whole ``Runtime`` in this process on the in-memory broker
of ``edge_runtime.testing`` with its ``FakeModel`` (64x64 faces, a few numpy calls a batch),
publishes camera requests 256 at a time and prints the CPU spent per request: the MQTT door,
codec, batcher, service and metrics, without the model, the broker or the socket. Other
tenants of the machine only ever add to a run, so the least of a few runs is the steadiest
figure (a few % between invocations here, against 10-30 % for end-to-end rounds).
``--a DIR`` compares two checkouts (``git worktree add /tmp/before HEAD~1``) in alternating
runs, each in its own process importing that checkout's ``edge_runtime`` and ``edgeinfer``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge_runtime import FacePixels, Request, Runtime, Topics, encode_request, load_settings
from edge_runtime.testing import FakeModel, MemoryBroker

REPO = Path(__file__).resolve().parents[1]
ROOT = "bench/v1"
DEVICES = 64
IN_FLIGHT = 256


async def cpu_us_per_request(requests: int) -> float:
    """CPU microseconds the process spent per request answered, payloads made beforehand."""
    settings = load_settings(
        {},
        None,
        {
            "mqtt.broker": "mqtt://broker.invalid:1883",  # never dialled: in memory
            "runtime_id": "bench",
            "topic_root": ROOT,
            "metrics.port": 0,
            "http.port": 0,
            "twin.enabled": False,
            "batch.off_loop_when_busy": False,
        },
    )
    broker = MemoryBroker()
    runtime = Runtime(settings, model=FakeModel(side=64), transport=broker.open)
    ready = asyncio.Event()
    task = asyncio.create_task(runtime.run(on_ready=ready.set))
    try:
        await ready.wait()
        rng = np.random.default_rng(0)
        topics = [Topics(ROOT).request(f"cam-{i}") for i in range(DEVICES)]
        payloads = [
            encode_request(
                Request(
                    f"r{i}",
                    f"cam-{i % DEVICES}",
                    1,
                    (FacePixels(rng.integers(0, 255, (64, 64, 1), np.uint8)),),
                )
            )
            for i in range(requests)
        ]
        started = time.process_time()
        for first in range(0, requests, IN_FLIGHT):
            broker.sent.clear()
            broker.events.clear()
            last = min(requests, first + IN_FLIGHT)
            for i in range(first, last):
                broker.publish(topics[i % DEVICES], payloads[i])
            await broker.answers(last - first, timeout_s=60)
        return (time.process_time() - started) / requests * 1e6
    finally:
        runtime.stop()
        await task


def _one_run(checkout: Path, requests: int) -> float:
    """One run in a process of its own: this file, ``checkout``'s edge_runtime and edgeinfer."""
    env = {**os.environ, "PYTHONPATH": f"{checkout}{os.pathsep}{checkout / 'proto'}"}
    script = (
        "import asyncio, runpy; "
        f"run = runpy.run_path({str(Path(__file__).resolve())!r})['cpu_us_per_request']; "
        f"print(asyncio.run(run({requests})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _line(name: str, runs: list[float]) -> str:
    return (
        f"{name}CPU us per request: "
        + ", ".join(f"{run:.1f}" for run in runs)
        + f"; least {min(runs):.1f}, median {statistics.median(runs):.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the CPU per request of each run, their least and their median."""
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per run")
    parser.add_argument("--runs", type=int, default=5, help="runs (per checkout with --a)")
    parser.add_argument("--a", type=Path, help="checkout A (the before): compare with --b")
    parser.add_argument("--b", type=Path, default=REPO, help="checkout B (default: this one)")
    args = parser.parse_args(argv)
    if args.a is None:
        runs = [asyncio.run(cpu_us_per_request(args.requests)) for _ in range(args.runs)]
        print(_line("", runs))
        return 0
    checkouts = {"A": args.a.resolve(), "B": args.b.resolve()}
    measured: dict[str, list[float]] = {"A": [], "B": []}
    for index in range(args.runs):
        for name in ("A", "B") if index % 2 == 0 else ("B", "A"):
            measured[name].append(_one_run(checkouts[name], args.requests))
    for name, runs in measured.items():
        print(_line(f"{name} ({checkouts[name]}): ", runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
