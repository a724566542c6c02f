"""``device-sim``: a fleet of simulated cameras against an edge runtime."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from device_sim.camera import Camera, CameraConfig
from device_sim.faces import EMOTIONS
from device_sim.stats import FleetStats
from edge_runtime import Response

_CONSOLE = Console()


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="device-sim",
        description="Run N simulated cameras: each renders a labelled face per frame, crops "
        "and resizes it to the input the runtime advertises in its retained ServiceInfo, "
        "publishes it, and checks the answer. Prints a summary and writes a JSON report.",
    )
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    parser.add_argument("--runtime-id", default="edge-1", help="runtime whose info to read")
    parser.add_argument("--topic-root", default="emotion/v1", help="application topic root")
    parser.add_argument("--devices", type=int, default=5, help="number of cameras")
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second per camera")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to publish")
    parser.add_argument("--seed", type=int, default=0, help="seed of the face renderer")
    parser.add_argument("--print-answers", action="store_true", help="print every answer")
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="fault injection: share of frames sent with pixel data shorter than their "
        "shape, which the runtime must answer INVALID_ARGUMENT (counted apart; default 0)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=Path("demo-output/fleet-report.json"),
        help="where to write the JSON report",
    )
    return parser


def _printer(name: str, response: Response, label: int) -> None:
    if response.results:
        top = response.results[0]
        version = response.model.version if response.model else "?"
        mark = "[green]✓[/]" if top.label == EMOTIONS[label] else "[red]✗[/]"
        _CONSOLE.print(
            f"{name:>8} → {top.label:<8} p={top.confidence:.2f} "
            f"(shown {EMOTIONS[label]:<8}) {mark} model {version}"
        )
    else:
        _CONSOLE.print(f"{name:>8} → {response.status.name}: {response.error}")


def print_summary(stats: FleetStats) -> None:
    """Print the end-of-run table."""
    summary = stats.summary()
    table = Table(title="fleet summary")
    for column in ("sent", "answered", "failed", "lost", "p50 ms", "p99 ms", "answers/s"):
        table.add_column(column, justify="right")
    latency = summary["latency_ms"]
    table.add_row(
        str(summary["sent"]),
        str(summary["answered"]),
        str(summary["failed"]),
        str(summary["lost"]),
        f"{latency['p50']:.2f}",
        f"{latency['p99']:.2f}",
        f"{summary['throughput_rps']:.1f}",
    )
    _CONSOLE.print(table)
    if summary["injected"]:
        _CONSOLE.print(
            f"fault injection: {summary['injected']} malformed faces sent, answered "
            f"{summary['injected_statuses']} (expected INVALID_ARGUMENT only)"
        )
    for version, accuracy in summary["accuracy_by_model_version"].items():
        count = summary["answers_by_model_version"][version]
        _CONSOLE.print(
            f"model {version}: {count} answers, accuracy on rendered faces {accuracy:.1%}"
        )
    for event in summary["events"]:
        _CONSOLE.print(f"t={event['t_s']:.1f}s {event['event']}")


async def run_fleet(args: argparse.Namespace) -> FleetStats:
    """Run all cameras concurrently until they finish."""
    stats = FleetStats()
    on_answer = _printer if args.print_answers else None
    async with asyncio.TaskGroup() as tg:
        for index in range(args.devices):
            config = CameraConfig(
                name=f"cam-{index:02d}",
                broker=args.broker,
                runtime_id=args.runtime_id,
                topic_root=args.topic_root,
                fps=args.fps,
                seed=args.seed + index,
                malformed_rate=args.malformed_rate,
            )
            tg.create_task(
                Camera(config, stats, on_answer).run(args.duration),
                name=f"fleet.camera[{config.name}]",
            )
    return stats


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``device-sim``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        stats = asyncio.run(run_fleet(args))
    except KeyboardInterrupt:
        return 130
    print_summary(stats)
    print(stats.write(args.report))
    unexpected = sum(stats.injected_statuses.values()) - stats.injected_statuses.get(
        "INVALID_ARGUMENT", 0
    )
    return 0 if stats.lost == 0 and stats.failed == 0 and unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
