"""``device-sim``: a fleet of simulated cameras against an edge runtime."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from device_sim.devices import camera_devices
from device_sim.fleet import run_scenario
from device_sim.plots import write_plots
from device_sim.scenario import Scenario, ScenarioError, build_scenario, load_scenario
from device_sim.sources import SourceError
from device_sim.stats import FleetStats
from edge_runtime import Response
from edgeinfer.faces import EMOTIONS

_CONSOLE = Console()
# Scenario fields the command line may set; given with --scenario, they override the file.
_TOP_LEVEL = {
    "broker": "broker",
    "runtime_id": "runtime_id",
    "topic_root": "topic_root",
    "duration": "duration_s",
    "answer_timeout": "answer_timeout_s",
    "report_interval": "report_interval_s",
    "processes": "processes",
    "seed": "seed",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="device-sim",
        description="Run simulated cameras against an edge runtime. Each camera takes frames "
        "(rendered faces, photos or video), finds the faces, crops and resizes them to the input "
        "the runtime advertises in its retained ServiceInfo, publishes them and checks the "
        "answers. It also follows desired capture_fps/enabled on its control topic and reports "
        "its status (bridged to KubeEdge twins by the camera mapper). Prints a live table and a "
        "summary, writes a JSON report and PNG plots. Use flags for one group of cameras, or "
        "--scenario for a YAML file with several groups (see device_sim/scenario.py).",
    )
    parser.add_argument("--scenario", type=Path, help="scenario YAML (flags below override it)")
    run = parser.add_argument_group("where")
    run.add_argument("--broker", help="broker URL (default mqtt://127.0.0.1:1883)")
    run.add_argument("--runtime-id", help="runtime whose ServiceInfo to read (default edge-1)")
    run.add_argument("--topic-root", help="application topic root (default emotion/v1)")
    run.add_argument("--duration", type=float, help="seconds each camera publishes (default 10)")
    run.add_argument("--answer-timeout", type=float, help="seconds before a request is lost")
    run.add_argument("--report-interval", type=float, help="least seconds between status reports")
    run.add_argument("--processes", type=int, help="spread cameras over this many processes")
    run.add_argument("--seed", type=int, help="seed of sources and jitter (default 0)")
    group = parser.add_argument_group("one group of cameras (without --scenario)")
    group.add_argument("--devices", type=int, default=5, help="number of cameras")
    group.add_argument("--name", default="cam", help="camera name prefix (cam-00, cam-01, ...)")
    group.add_argument("--mode", choices=["open", "closed"], default="open", help="pacing")
    group.add_argument("--fps", type=float, default=2.0, help="open loop: frames/s per camera")
    group.add_argument("--in-flight", type=int, default=1, help="closed loop: outstanding/camera")
    group.add_argument("--ramp-up", type=float, default=0.0, help="start cameras over N seconds")
    group.add_argument(
        "--source",
        default="synthetic",
        help="synthetic (labelled rendered faces), samples (scikit-image photos), "
        "folder:PATH (images; a folder named after an emotion labels them) or video:PATH",
    )
    group.add_argument("--username", default="", help="MQTT user ('{name}': the camera name)")
    group.add_argument("--password", default="", help="MQTT password")
    group.add_argument(
        "--share-for-training",
        action="store_true",
        help="the cameras consent to their hard faces being kept as training data "
        "(InferenceRequest.share_for_training; the runtime keeps nothing otherwise)",
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="share of frames sent with pixel data shorter than their shape, which the "
        "runtime must answer INVALID_ARGUMENT (counted apart; default 0)",
    )
    faults.add_argument(
        "--disconnect-every",
        type=float,
        default=0.0,
        help="drop each camera's connection about every N s (its Will says offline); "
        "it resumes its session, so answers sent meanwhile still arrive (default: never)",
    )
    faults.add_argument("--disconnect-for", type=float, default=1.0, help="seconds away")
    output = parser.add_argument_group("output")
    output.add_argument("--print-answers", action="store_true", help="print every answer")
    output.add_argument("--no-live", action="store_true", help="no live table")
    output.add_argument(
        "--report",
        type=Path,
        default=Path("demo-output/fleet-report.json"),
        help="JSON report; the PNG plots go beside it",
    )
    output.add_argument(
        "--emit-devices",
        choices=["v1alpha2", "v1beta1"],
        help="print the cameras' KubeEdge Device YAML for this API version and exit",
    )
    output.add_argument("--node", default="edge-node", help="edge node of --emit-devices")
    return parser


def scenario_of(args: argparse.Namespace) -> Scenario:
    """The scenario from --scenario and the flags.

    Raises:
        ScenarioError: if the file or the flags do not validate.
    """
    overrides: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in _TOP_LEVEL.items()
        if getattr(args, flag) is not None
    }
    if args.scenario is not None:
        return load_scenario(args.scenario, overrides)
    group = {
        "name": args.name,
        "count": args.devices,
        "mode": args.mode,
        "fps": args.fps,
        "in_flight": args.in_flight,
        "ramp_up_s": args.ramp_up,
        "source": args.source,
        "username": args.username,
        "password": args.password,
        "share_for_training": args.share_for_training,
        "faults": {
            "malformed_rate": args.malformed_rate,
            "disconnect_every_s": args.disconnect_every,
            "disconnect_for_s": args.disconnect_for,
        },
    }
    return build_scenario({**overrides, "groups": [group]})


def _printer(name: str, response: Response, label: int | None) -> None:
    version = response.model.version if response.model else "?"
    if not response.results:
        _CONSOLE.print(f"{name:>8} → {response.status.name}: {response.error}")
        return
    top = response.results[0]
    shown = ""
    if label is not None:
        mark = "[green]✓[/]" if top.label == EMOTIONS[label] else "[red]✗[/]"
        shown = f"(shown {EMOTIONS[label]:<8}) {mark} "
    _CONSOLE.print(f"{name:>8} → {top.label:<8} p={top.confidence:.2f} {shown}model {version}")


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
    if summary["disconnects"]:
        _CONSOLE.print(f"fault injection: {summary['disconnects']} dropped connections")
    if summary["frames_without_face"]:
        _CONSOLE.print(f"{summary['frames_without_face']} frames without a face (not sent)")
    for version, accuracy in summary["accuracy_by_model_version"].items():
        count = summary["answers_by_model_version"][version]
        _CONSOLE.print(
            f"model {version}: {count} answers, accuracy on labelled faces {accuracy:.1%}"
        )
    for event in summary["events"]:
        _CONSOLE.print(f"t={event['t_s']:.1f}s {event['event']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``device-sim``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        scenario = scenario_of(args)
    except ScenarioError as exc:
        print(f"device-sim: {exc}", file=sys.stderr)
        return 2
    if args.emit_devices:
        print(yaml.safe_dump_all(camera_devices(scenario, args.emit_devices, args.node)), end="")
        return 0
    live = not args.no_live and not args.print_answers and _CONSOLE.is_terminal
    try:
        stats = asyncio.run(
            run_scenario(
                scenario,
                console=_CONSOLE if live else None,
                on_answer=_printer if args.print_answers else None,
            )
        )
    except SourceError as exc:
        print(f"device-sim: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print_summary(stats)
    for plot in write_plots(stats, args.report.parent, args.report.stem):
        _CONSOLE.print(f"plot: {plot}")
    print(stats.write(args.report))
    unexpected = sum(stats.injected_statuses.values()) - stats.injected_statuses.get(
        "INVALID_ARGUMENT", 0
    )
    return 0 if stats.lost == 0 and stats.failed == 0 and unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
