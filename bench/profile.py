"""Where the runtime's CPU goes at maximum load: py-spy samples, per-function shares.

``python -m bench.profile --label NAME`` starts mosquitto and the runtime, drives the runtime
with the closed-loop load generator (MQTT, 256 in flight; or ``--door oip|tfserving``, 32
HTTP requests in flight), samples the runtime with py-spy for the
run and writes ``bench/results/profiles/NAME.md`` (per-function shares, self and inclusive) and
``NAME.txt`` (py-spy's collapsed stacks, not committed). py-spy lives in its own environment
(``.state/tools``, made on first use) so it is never one of the runtime's dependencies.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from bench.endtoend import closed
from bench.frontdoors import MODEL_NAME, http_row, oip_body
from bench.processes import broker, free_port, runtime
from device_sim.app import APP_PATH, app_body

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".state" / "tools"


def py_spy() -> Path:
    """py-spy from its own venv, installed there on first use."""
    binary = TOOLS / "bin" / "py-spy"
    if not binary.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return binary


@dataclass(frozen=True, slots=True)
class Share:
    """One function's share of the samples."""

    function: str
    self_share: float
    total_share: float


def shares(collapsed: str) -> tuple[int, list[Share]]:
    """Samples in all and each function's self and inclusive share, from collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    rows = [Share(name, own[name] / samples, total[name] / samples) for name in total if samples]
    return samples, rows


def _short(frame: str) -> str:
    # py-spy: "function (path/to/module.py:line)"; keep the function and the module's file name.
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    if name.startswith("process ") or name.startswith("thread "):
        return ""
    return f"{name} ({module})" if module else name


def markdown(
    label: str, samples: int, rows: list[Share], faces_per_s: float, load: str = "MQTT, 256"
) -> str:
    """The shares as two tables: by self time and by inclusive time."""
    lines = [
        f"# Runtime profile: {label}",
        "",
        f"py-spy, {samples:,} samples of the runtime (idle threads excluded) at maximum "
        f"closed-loop load ({load} in flight); {faces_per_s:,.0f} faces/s during the run.",
        "",
        "## Self time (the function itself)",
        "",
        "| function | self | inclusive |",
        "|---|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: -r.self_share)[:30]:
        lines.append(f"| `{row.function}` | {row.self_share:.1%} | {row.total_share:.1%} |")
    lines += [
        "",
        "## Inclusive time (the function and what it calls)",
        "",
        "| function | inclusive | self |",
        "|---|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: -r.total_share)[:40]:
        lines.append(f"| `{row.function}` | {row.total_share:.1%} | {row.self_share:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Profile the runtime at maximum load and write the shares."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description="Sample the edge runtime with py-spy at maximum closed-loop load and "
        "write per-function shares to bench/results/profiles/LABEL.{md,txt}.",
    )
    parser.add_argument("--label", required=True, help="file name for this profile")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling time")
    parser.add_argument("--registry", type=Path, default=REPO / "models")
    parser.add_argument(
        "--checkout", type=Path, default=REPO, help="the checkout whose runtime to profile"
    )
    parser.add_argument(
        "--door",
        choices=("mqtt", "oip", "tfserving"),
        default="mqtt",
        help="the front door to load: MQTT (256 in flight), or HTTP (32 in flight): the Open "
        "Inference Protocol request or the reference app's TF Serving request",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "profiles")
    parser.add_argument("runtime_args", nargs="*", help="extra edge-runtime flags (after --)")
    args = parser.parse_args(argv)
    spy = py_spy()
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"{args.label}.txt"
    checkout, registry = args.checkout.resolve(), args.registry.resolve()
    http_port = free_port()
    flags = [*args.runtime_args, "--http-port", str(http_port)]
    with broker(REPO) as port, runtime(checkout, port, registry, *flags) as served:
        result: list[float] = []
        seconds = args.seconds + 1.5

        def drive() -> None:
            if args.door == "mqtt":
                result.append(closed(port, 256, seconds).faces_per_s)
                return
            oip = args.door == "oip"
            path = f"/v2/models/{MODEL_NAME}/infer" if oip else APP_PATH
            body = oip_body() if oip else app_body(np.full((48, 48, 3), 128, np.uint8))
            url = f"http://127.0.0.1:{http_port}{path}"
            server = psutil.Process(served.pid)
            result.append(
                http_row("runtime", args.door, url, body, server, 32, seconds).faces_per_s
            )

        load = threading.Thread(target=drive)
        load.start()
        subprocess.run(
            [
                str(spy), "record", "--pid", str(served.pid), "--duration",
                str(int(args.seconds)), "--rate", "250", "--format", "raw", "--nonblocking",
                "--output", str(raw),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        load.join()
    samples, rows = shares(raw.read_text(encoding="utf-8"))
    load_text = "MQTT, 256" if args.door == "mqtt" else f"{args.door} over HTTP, 32"
    text = markdown(args.label, samples, rows, result[0] if result else 0.0, load_text)
    (args.out / f"{args.label}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
