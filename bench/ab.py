"""A/B: two checkouts of the runtime (and the naive peer) in alternating closed-loop rounds.

``python -m bench.ab --a DIR --b DIR`` runs ``edge_runtime`` from each checkout (``git
worktree add /tmp/before HEAD~1`` makes one), each on its own mosquitto, and measures them
round by round in turn (A, B, naive peer, ...), so that all three meet the same machine
weather. It prints each round, the medians, and the runtime's CPU per face: the evidence a
hot-path change is kept on (bench/results/ab-*.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from bench.endtoend import CpuWindow, busy_neighbour, closed, naive_peer, open_at
from bench.frontdoors import MODEL_NAME, http_row, oip_body
from bench.processes import broker, free_port, runtime
from device_sim.app import APP_PATH, app_body

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Alternate rounds of checkout A, checkout B and the naive peer; print the medians."""
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--a", type=Path, required=True, help="checkout A (the before)")
    parser.add_argument("--b", type=Path, default=REPO, help="checkout B (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop at this many requests/s instead of the maximum: compares latency "
        "(p99 end to end and the runtime's own), A and B only",
    )
    parser.add_argument("--registry", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    parser.add_argument(
        "--neighbour",
        action="store_true",
        help="with --rate: each round beside a process busy-looping on one core",
    )
    parser.add_argument(
        "--door",
        choices=("mqtt", "oip", "tfserving"),
        default="mqtt",
        help="the front door to load: MQTT (with the naive peer), or A and B alone over HTTP "
        "with the Open Inference Protocol request or the reference app's TF Serving request "
        "(--in-flight 32 for them, as part 7 of make bench)",
    )
    parser.add_argument("--a-args", default="", help="edge-runtime flags for A only")
    parser.add_argument("--b-args", default="", help="edge-runtime flags for B only")
    parser.add_argument("runtime_args", nargs="*", help="extra edge-runtime flags (after --)")
    args = parser.parse_args(argv)
    model = args.registry / "emotion" / "1.0.0" / "model.tflite"
    rates: dict[str, list[float]] = {"A": [], "B": [], "naive": []}
    cpu: dict[str, list[float]] = {"A": [], "B": [], "naive": []}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, checkout, own in (("A", args.a, args.a_args), ("B", args.b, args.b_args)):
            port = stack.enter_context(broker(REPO))
            flags = [*args.runtime_args, *shlex.split(own)]
            http_port = free_port()
            if args.door != "mqtt":
                flags = ["--http-port", str(http_port), *flags]
            served = stack.enter_context(
                runtime(checkout.resolve(), port, args.registry.resolve(), *flags)
            )
            loaded = port if args.door == "mqtt" else http_port
            servers[name] = (loaded, psutil.Process(served.pid), args.in_flight)
        if args.door != "mqtt":
            return _http(servers, args.door, args.rounds, args.seconds, args.out)
        if args.rate:
            return _latency(servers, args.rate, args.rounds, args.seconds, args.out, args.neighbour)
        port = stack.enter_context(broker(REPO))
        served = stack.enter_context(naive_peer(REPO, port, model.resolve()))
        servers["naive"] = (port, psutil.Process(served.pid), 32)
        for index in range(args.rounds):
            # Whoever went first in a round measured faster here, whatever the code (A first:
            # B 6 % slower; the same two checkouts swapped: A 2.5 % faster): the order alternates.
            order = ["A", "B", "naive"] if index % 2 == 0 else ["B", "A", "naive"]
            for name in order:
                port, process, in_flight = servers[name]
                window = CpuWindow(process)
                row = closed(port, in_flight, args.seconds, window)
                rates[name].append(row.faces_per_s)
                faces = max(1.0, row.faces_per_s * args.seconds)
                cpu[name].append(window.spent()[0] / faces * 1000)
                print(
                    f"round {index + 1} {name}: {row.faces_per_s:,.0f} faces/s, "
                    f"{cpu[name][-1]:.3f} CPU ms/face, p99 {row.p99_ms:.1f} ms",
                    flush=True,
                )
    lines = [
        "| server | faces/s per round | median | CPU ms/face (median) | x naive |",
        "|---|---|---:|---:|---:|",
    ]
    naive = statistics.median(rates["naive"])
    for name in ("A", "B", "naive"):
        median = statistics.median(rates[name])
        lines.append(
            f"| {name} | {', '.join(f'{r:,.0f}' for r in rates[name])} | {median:,.0f} | "
            f"{statistics.median(cpu[name]):.3f} | {median / naive:.2f} |"
        )
    return _report(lines, args.out)


def _http(
    servers: dict[str, tuple[int, psutil.Process, int]],
    door: str,
    rounds: int,
    seconds: float,
    out: Path | None,
) -> int:
    """A and B in alternating closed-loop rounds through one HTTP door."""
    if door == "oip":
        path, body = f"/v2/models/{MODEL_NAME}/infer", oip_body()
    else:
        path, body = APP_PATH, app_body(np.full((48, 48, 3), 128, np.uint8))
    rates: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    for index in range(rounds):
        for name in ("A", "B") if index % 2 == 0 else ("B", "A"):
            port, process, in_flight = servers[name]
            row = http_row(
                name, door, f"http://127.0.0.1:{port}{path}", body, process, in_flight, seconds
            )
            rates[name].append(row.faces_per_s)
            cpu[name].append(row.cpu_ms_per_face)
            print(
                f"round {index + 1} {name}: {row.faces_per_s:,.0f} req/s, "
                f"{row.cpu_ms_per_face:.3f} CPU ms/request, p99 {row.p99_ms:.1f} ms, "
                f"errors {row.errors}",
                flush=True,
            )
    lines = [
        f"| server | {door} requests/s per round | median | CPU ms/request (median) |",
        "|---|---|---:|---:|",
    ]
    for name in servers:
        lines.append(
            f"| {name} | {', '.join(f'{r:,.0f}' for r in rates[name])} | "
            f"{statistics.median(rates[name]):,.0f} | {statistics.median(cpu[name]):.3f} |"
        )
    return _report(lines, out)


def _latency(
    servers: dict[str, tuple[int, psutil.Process, int]],
    rate: float,
    rounds: int,
    seconds: float,
    out: Path | None,
    neighbour: bool,
) -> int:
    p99: dict[str, list[float]] = {name: [] for name in servers}
    own: dict[str, list[float]] = {name: [] for name in servers}
    for index in range(rounds):
        for name in list(servers) if index % 2 == 0 else ["B", "A", *list(servers)[2:]]:
            port = servers[name][0]
            with busy_neighbour() if neighbour else contextlib.nullcontext():
                if neighbour:
                    time.sleep(1.0)  # as part 8: the runtime meets the neighbour first
                row = open_at(port, rate, seconds)
            p99[name].append(row.p99_ms)
            own[name].append(row.server_p99_ms)
            print(
                f"round {index + 1} {name}: p99 {row.p99_ms:.1f} ms, own p99 "
                f"{row.server_p99_ms:.1f} ms, lost {row.lost}",
                flush=True,
            )
    lines = [
        f"| server | p99 ms per round at {rate:,.0f} req/s | median | the runtime's own p99 "
        "ms per round | median |",
        "|---|---|---:|---|---:|",
    ]
    for name in servers:
        lines.append(
            f"| {name} | {', '.join(f'{v:.1f}' for v in p99[name])} | "
            f"{statistics.median(p99[name]):.1f} | {', '.join(f'{v:.1f}' for v in own[name])} "
            f"| {statistics.median(own[name]):.1f} |"
        )
    return _report(lines, out)


def _report(lines: list[str], out: Path | None) -> int:
    """Print the table, and write it to ``out`` when given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
