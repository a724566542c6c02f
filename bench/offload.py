"""``make bench-offload``: joint inference measured; bench/results/offload.{md,json,png}.

(1) Accuracy against the share of faces offloaded, for each hard-example policy and for random
and oracle choice: the edge serves 1.0.0, the cloud the trained version (``--cloud-version``,
trained here as ``make demo`` trains it when the registry lacks it), on rendered faces with
labels. (2) The edge's answer p99 at a fixed open-loop rate with offload off and with the cloud
healthy, slow (2 s), refusing, black-holed and flapping (2 s up, 2 s refusing), every answer
counted. (3) The offloads a second the edge sustains against a healthy cloud (every face hard).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from bench.endtoend import open_at
from bench.load import Load, LoadResult
from bench.processes import broker, free_port, runtime
from cloud_trainer.predictors import TfLitePredictor
from edgeinfer.faces import FaceRenderer
from edgeinfer.hardness import Policy, score

REPO = Path(__file__).resolve().parents[1]
RATES = tuple(r / 20 for r in range(21))  # 0 %, 5 %, ..., 100 % offloaded
POLICIES = ("margin", "max_prob", "entropy", "random", "oracle")
CLOUD_STATES = ("healthy", "slow", "refusing", "black_hole", "flapping")


# --- (1) accuracy against offload rate ---


def accuracy_curves(
    edge: np.ndarray, cloud: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict[str, list[float]]:
    """Accuracy at each of ``RATES`` when that share of faces, the hardest first, is answered
    by the cloud: per policy, random order, and the oracle (the edge's wrong answers first)."""
    rng = random.Random(seed)  # noqa: S311 - a sampling policy
    edge_right = edge.argmax(axis=1) == labels
    cloud_right = cloud.argmax(axis=1) == labels
    rows = edge.tolist()
    orders: dict[str, list[int]] = {}
    for name in ("margin", "max_prob", "entropy"):
        scores = [score(Policy(name), row, rng) for row in rows]
        orders[name] = sorted(range(len(rows)), key=scores.__getitem__)
    shuffled = list(range(len(rows)))
    rng.shuffle(shuffled)
    orders["random"] = shuffled
    orders["oracle"] = sorted(range(len(rows)), key=lambda i: (bool(edge_right[i]), i))
    curves = {}
    for name, order in orders.items():
        curve = []
        for rate in RATES:
            offloaded = np.zeros(len(rows), bool)
            offloaded[order[: round(rate * len(rows))]] = True
            curve.append(float(np.where(offloaded, cloud_right, edge_right).mean()))
        curves[name] = curve
    return curves


def _cloud_version(registry: Path, version: str) -> Path:
    """The cloud's model file; trained as ``make demo`` trains it when it is missing."""
    directory = registry / "emotion" / version
    if not (directory / "manifest.json").is_file():
        from cloud_trainer.__main__ import main as trainer

        print(f"training the cloud's model {version} (as make demo does)", flush=True)
        argv = ["--registry", str(registry), "train", "--data", "synthetic:2100"]
        argv += ["--init-from", "1.0.0", "--epochs", "3", "--quiet", "--version", version]
        if trainer(argv) != 0:
            raise RuntimeError(f"could not train {version}")
    return directory / "model.tflite"


# --- (2) the edge's p99 in each cloud state ---


@contextlib.contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _Slow(BaseHTTPRequestHandler):
    """Answers every request after 2 s (with an error: the edge gave up long before)."""

    def do_POST(self) -> None:
        time.sleep(2.0)
        self.send_error(503)

    def log_message(self, *_: Any) -> None:
        pass


@contextlib.contextmanager
def _black_hole() -> Iterator[int]:
    """A port whose kernel completes connections that nobody ever reads or answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        yield int(sock.getsockname()[1])


@contextlib.contextmanager
def _flapping(target: int, period_s: float = 2.0) -> Iterator[int]:
    """A TCP relay to ``target`` that is down every other period: it then cuts the connections
    it relays and closes new ones at once (as a cloud restarting or a link going away)."""
    loop = asyncio.new_event_loop()
    started = time.monotonic()
    relayed: set[asyncio.StreamWriter] = set()

    def down() -> bool:
        return int((time.monotonic() - started) / period_s) % 2 == 1

    async def cut_when_down() -> None:
        while True:
            await asyncio.sleep(0.05)
            if down():
                for writer in list(relayed):
                    writer.close()
                relayed.clear()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if down():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        relayed.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", 0))
    cutter = loop.create_task(cut_when_down())
    port = int(server.sockets[0].getsockname()[1])
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(cutter.cancel)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@dataclass(frozen=True, slots=True)
class StateResult:
    """One cloud state at the fixed rate."""

    state: str
    p50_ms: float
    p99_ms: float
    sent: int
    answered: int
    errors: int
    lost: int
    offloads: dict[str, float]  # edge_offloaded_faces_total by result


def _offloads(metrics_port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "edge_offloaded_faces_total"
    }


@contextlib.contextmanager
def _runtime(port: int, registry: Path, version: str, *extra: str) -> Iterator[int]:
    """An edge (or cloud) runtime; yields its metrics port once ready."""
    metrics_port = free_port()
    with runtime(
        REPO,
        port,
        registry,
        *extra,
        version=version,
        runtime_id=f"bench-{metrics_port}",
        metrics_port=metrics_port,
    ):
        yield metrics_port


@contextlib.contextmanager
def _cloud(state: str, healthy_port: int) -> Iterator[str]:
    """The offload URL of ``state``."""
    if state == "healthy":
        yield f"http://127.0.0.1:{healthy_port}"
    elif state == "slow":
        with _serving(ThreadingHTTPServer(("127.0.0.1", 0), _Slow)) as port:
            yield f"http://127.0.0.1:{port}"
    elif state == "refusing":
        yield f"http://127.0.0.1:{free_port()}"
    elif state == "black_hole":
        with _black_hole() as port:
            yield f"http://127.0.0.1:{port}"
    else:
        with _flapping(healthy_port) as port:
            yield f"http://127.0.0.1:{port}"


def cloud_states(
    registry: Path, cloud_version: str, rate: float, seconds: float
) -> tuple[LoadResult, list[StateResult], LoadResult]:
    """Offload off, then each cloud state, at ``rate``; then the offloads a second sustained."""
    offload = ["--offload-policy", "margin", "--offload-threshold", "0.3"]
    offload += ["--offload-budget-ms", "200", "--offload-max-faces-per-s", "0"]
    with broker(REPO) as port:
        with _runtime(port, registry, "1.0.0", "--http-port", "0"):
            time.sleep(0.5)
            baseline = open_at(port, rate, seconds)
        http = free_port()
        cloud_flags = ["--http-port", str(http), "--runtime-id", "bench-cloud"]
        with _runtime(port, registry, cloud_version, *cloud_flags):
            results = []
            for state in CLOUD_STATES:
                with (
                    _cloud(state, http) as url,
                    _runtime(port, registry, "1.0.0", "--offload-url", url, *offload) as metrics,
                ):
                    # The breaker opens in the first second of a dead cloud: measured after.
                    open_at(port, rate, 1.0)
                    load = open_at(port, rate, seconds)
                    results.append(
                        StateResult(
                            state,
                            load.p50_ms,
                            load.p99_ms,
                            load.sent,
                            load.answered,
                            load.errors,
                            load.lost,
                            _offloads(metrics),
                        )
                    )
            every_face = ["--offload-url", f"http://127.0.0.1:{http}", "--offload-policy"]
            every_face += ["always", "--offload-max-faces-per-s", "0", "--http-port", "0"]
            with _runtime(port, registry, "1.0.0", *every_face):
                devices = Load(port, 32)
                try:
                    sustained = devices.closed_loop(seconds)
                finally:
                    devices.close()
    return baseline, results, sustained


# --- report ---


def markdown(
    curves: dict[str, list[float]],
    faces: int,
    baseline: LoadResult | None,
    states: list[StateResult],
    sustained: LoadResult | None,
    rate: float,
) -> str:
    """The report."""
    shown = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
    lines = [
        "# Joint inference (`make bench-offload`)",
        "",
        f"**1. Accuracy against the share offloaded** ({faces} rendered faces; edge 1.0.0, "
        "cloud the trained version; the hardest faces by each policy go first)",
        "",
        "| policy | " + " | ".join(f"{r:.0%}" for r in shown) + " |",
        "| --- | " + " | ".join("---:" for _ in shown) + " |",
    ]
    for name, curve in curves.items():
        cells = [curve[RATES.index(r)] for r in shown]
        lines.append(f"| {name} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")
    worse = {
        name: [f"{RATES[i]:.0%}" for i in range(1, len(RATES) - 1) if c[i] <= curves["random"][i]]
        for name, c in curves.items()
        if name in ("margin", "max_prob", "entropy")
    }
    lines += [
        "",
        "Where a policy is not better than random choice: "
        + "; ".join(f"{n}: {', '.join(w) or 'nowhere'}" for n, w in worse.items())
        + ".",
    ]
    if baseline is not None:
        lines += [
            "",
            f"**2. The edge's answers at {rate:,.0f} requests/s** (margin < 0.3, budget 200 ms; "
            "after a 1 s warm-up in which a dead cloud opens the breaker)",
            "",
            "| cloud | p50 ms | p99 ms | sent | answered | errors | lost | offloads by result |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| offload off | {baseline.p50_ms:.1f} | {baseline.p99_ms:.1f} | {baseline.sent} | "
            f"{baseline.answered} | {baseline.errors} | {baseline.lost} | (none) |",
        ]
        for s in states:
            counts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(s.offloads.items()))
            lines.append(
                f"| {s.state} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | {s.sent} | {s.answered} | "
                f"{s.errors} | {s.lost} | {counts} |"
            )
    if sustained is not None:
        lines += [
            "",
            f"**3. Offloads a second the edge sustains** (every face to a healthy cloud on the "
            f"same machine, 32 devices in flight): {sustained.faces_per_s:,.0f} faces/s, "
            f"p99 {sustained.p99_ms:.1f} ms.",
        ]
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, list[float]], path: Path) -> None:
    """Accuracy against offload rate, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        axes.plot([r * 100 for r in RATES], [c * 100 for c in curve], label=name)
    axes.set_xlabel("faces offloaded (%)")
    axes.set_ylabel("accuracy (%)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench.offload``."""
    parser = argparse.ArgumentParser(prog="python -m bench.offload", description=__doc__)
    parser.add_argument("--registry", type=Path, default=REPO / "models")
    parser.add_argument("--cloud-version", default="1.1.0", help="the cloud's model version")
    parser.add_argument("--faces", type=int, default=1400, help="rendered faces for part 1")
    parser.add_argument("--seed", type=int, default=2026, help="seed of those faces")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of part 2")
    parser.add_argument("--seconds", type=float, default=6.0, help="each run of parts 2 and 3")
    parser.add_argument("--accuracy-only", action="store_true", help="part 1 alone")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    cloud_file = _cloud_version(args.registry, args.cloud_version)
    faces, labels = FaceRenderer(args.seed).dataset(args.faces, side=64)
    edge_file = args.registry / "emotion" / "1.0.0" / "model.tflite"
    curves = accuracy_curves(
        TfLitePredictor(edge_file.read_bytes()).predict(faces),
        TfLitePredictor(cloud_file.read_bytes()).predict(faces),
        labels,
    )
    baseline: LoadResult | None = None
    states: list[StateResult] = []
    sustained: LoadResult | None = None
    if not args.accuracy_only:
        baseline, states, sustained = cloud_states(
            args.registry, args.cloud_version, args.rate, args.seconds
        )
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(curves, args.faces, baseline, states, sustained, args.rate)
    (args.out / "offload.md").write_text(text, encoding="utf-8")
    result = {
        "rates": RATES,
        "curves": curves,
        "baseline": asdict(baseline) if baseline else None,
        "states": [asdict(s) for s in states],
        "sustained": asdict(sustained) if sustained else None,
    }
    (args.out / "offload.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot(curves, args.out / "offload.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
