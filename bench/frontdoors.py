"""Part 7: the front doors side by side, and the peers users compare us with.

One load generator (aiohttp, closed loop) sends the same Open Inference Protocol request (one
64x64x1 UINT8 face, the default model's input; output ``probabilities``) to the runtime's HTTP
door, to Seldon MLServer (adaptive batching) and to NVIDIA PyTriton (Triton's dynamic batcher),
each serving the same LiteRT model; the runtime's TF Serving door gets the reference app's
request, and its MQTT door the MQTT load generator's. Per target and concurrency: faces/s,
p50/p99 and the server's CPU per face (its whole process tree). The peers run from their own
environments under ``.state/peers`` (``make bench-peers``); a peer that is not installed or
cannot start is reported with the reason, never a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import psutil
from hdrh.histogram import HdrHistogram

from bench.endtoend import closed
from bench.processes import broker, free_port, ready, runtime
from device_sim.app import APP_PATH, app_body

PEERS = Path(__file__).resolve().parents[1] / ".state" / "peers"
PEER_SOURCES = Path(__file__).resolve().parent / "peers"
MODEL_NAME = "emotion"


@dataclass(frozen=True, slots=True)
class DoorRow:
    """One target at one concurrency."""

    target: str
    protocol: str
    concurrency: int
    faces_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_face: float
    errors: int
    moved: float = 0.0  # (max - min) / median of faces/s over the rounds
    rounds: int = 1


@dataclass(frozen=True, slots=True)
class Skipped:
    """A target that did not run, and why."""

    target: str
    reason: str


def _tree_cpu_s(process: psutil.Process) -> float:
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def oip_body(seed: int = 0) -> bytes:
    """One face as an Open Inference Protocol request, asking for probabilities only."""
    face = np.random.default_rng(seed).integers(0, 256, (1, 64, 64, 1), dtype=np.uint8)
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "face",
                    "shape": [1, 64, 64, 1],
                    "datatype": "UINT8",
                    "data": face.ravel().tolist(),
                }
            ],
            "outputs": [{"name": "probabilities"}],
        }
    ).encode()


async def _closed_http(
    url: str, body: bytes, concurrency: int, seconds: float
) -> tuple[int, int, HdrHistogram]:
    histogram = HdrHistogram(1, 60_000_000, 3)
    done = errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(until: float, record: bool) -> None:
            nonlocal done, errors
            while time.monotonic() < until:
                started = time.perf_counter()
                try:
                    async with session.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as reply:
                        await reply.read()
                        ok = reply.status == 200
                except aiohttp.ClientError:
                    ok = False
                if record:
                    if ok:
                        done += 1
                        histogram.record_value(int((time.perf_counter() - started) * 1e6))
                    else:
                        errors += 1

        warm = time.monotonic() + min(1.0, seconds / 2)
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        until = time.monotonic() + seconds
        await asyncio.gather(*(worker(until, True) for _ in range(concurrency)))
    return done, errors, histogram


def http_row(
    target: str,
    protocol: str,
    url: str,
    body: bytes,
    server: psutil.Process,
    concurrency: int,
    seconds: float,
) -> DoorRow:
    """Closed-loop HTTP load at ``concurrency`` against ``url``."""
    before = _tree_cpu_s(server)
    done, errors, histogram = asyncio.run(_closed_http(url, body, concurrency, seconds))
    spent = _tree_cpu_s(server) - before
    return DoorRow(
        target,
        protocol,
        concurrency,
        done / seconds,
        histogram.get_value_at_percentile(50) / 1000 if done else 0.0,
        histogram.get_value_at_percentile(99) / 1000 if done else 0.0,
        spent / max(1, done) * 1000,  # warm-up included in CPU, not in faces: a slight overcount
        errors,
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready(url):
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready within {timeout_s:.0f} s")
        time.sleep(0.25)


@contextlib.contextmanager
def _started(
    command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        started = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.pid, 15)
        try:
            started.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.pid, 9)
            started.wait(5)


@contextlib.contextmanager
def mlserver(model: Path, work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """MLServer serving ``model`` with adaptive batching; yields its infer URL."""
    binary = PEERS / "mlserver" / "bin" / "mlserver"
    if not binary.is_file():
        raise RuntimeError(f"not installed ({binary} missing): run make bench-peers")
    folder = work / "mlserver" / MODEL_NAME
    folder.mkdir(parents=True)
    shutil.copy(PEER_SOURCES / "mlserver_runtime.py", folder / "mlserver_runtime.py")
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (folder.parent / "settings.json").write_text(
        json.dumps({"http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port})
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_runtime.LiteRtClassifier",
                "max_batch_size": 16,
                "max_batch_time": 0.001,
                "parameters": {"uri": str(model)},
            }
        )
    )
    with _started(
        [str(binary), "start", str(folder.parent)], folder.parent, work / "mlserver.log"
    ) as started:
        _wait_ready(f"http://127.0.0.1:{http_port}/v2/models/{MODEL_NAME}/ready", started, 120)
        yield f"http://127.0.0.1:{http_port}/v2/models/{MODEL_NAME}/infer", started


@contextlib.contextmanager
def pytriton(model: Path, work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """PyTriton (Triton's dynamic batcher) serving ``model``; yields its infer URL."""
    python = PEERS / "pytriton" / "bin" / "python"
    if not python.is_file():
        raise RuntimeError(f"not installed ({python} missing): run make bench-peers")
    # PyTriton's tritonserver links the system libpython3.11; a venv of another build needs
    # the interpreter's LIBDIR on the library path.
    libdir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip() or str(sysconfig.get_config_var("LIBDIR"))  # fmt: skip
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    http_port = free_port()
    command = [
        str(python),
        str(PEER_SOURCES / "pytriton_server.py"),
        str(model),
        str(http_port),
        str(free_port()),
        str(free_port()),
    ]
    with _started(command, work, work / "pytriton.log", env) as started:
        _wait_ready(f"http://127.0.0.1:{http_port}/v2/models/{MODEL_NAME}/ready", started, 180)
        yield f"http://127.0.0.1:{http_port}/v2/models/{MODEL_NAME}/infer", started


@dataclass(frozen=True, slots=True)
class DoorRun:
    """Part 7: one row per target and concurrency (medians over the rounds), the peers that
    were not measured, and our OIP door over the best peer in each round at the highest
    concurrency."""

    rows: list[DoorRow]
    skipped: list[Skipped]
    vs_peers_rounds: list[float]


_Target = tuple[str, str, Callable[[int, float], DoorRow]]


def measure(
    repo: Path,
    registry: Path,
    model: Path,
    concurrency: tuple[int, ...],
    seconds: float,
    rounds: int = 3,
) -> DoorRun:
    """Every target at every concurrency in ``rounds`` interleaved rounds (order alternating),
    every server up throughout, so that each round meets the same machine weather; peers
    that cannot run are skipped with the reason."""
    skipped: list[Skipped] = []
    oip, app = oip_body(), app_body(np.full((48, 48, 3), 128, np.uint8))
    http_port = free_port()
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(broker(repo))
        process = stack.enter_context(runtime(repo, port, registry, "--http-port", str(http_port)))
        server = psutil.Process(process.pid)
        base = f"http://127.0.0.1:{http_port}"
        oip_url = f"{base}/v2/models/{MODEL_NAME}/infer"
        targets: list[_Target] = [
            ("edge runtime", "OIP (HTTP)", _http(oip_url, oip, server)),
            ("edge runtime", "TF Serving REST (app)", _http(base + APP_PATH, app, server)),
            ("edge runtime", "MQTT", functools.partial(_mqtt_row, port, server)),
        ]
        for name, peer in (
            ("MLServer 1.7 (adaptive batching)", mlserver),
            ("PyTriton (dynamic batcher)", pytriton),
        ):
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-peer-")))
            try:
                url, started = stack.enter_context(peer(model, work))
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                log = next(work.glob("*.log"), None)
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log else []
                skipped.append(Skipped(name, f"{exc}{': ' + tail[0][:200] if tail else ''}"))
                print(f"bench: {name} skipped: {skipped[-1].reason}", file=sys.stderr)
                continue
            targets.append((name, "OIP (HTTP)", _http(url, oip, psutil.Process(started.pid))))
        measured: dict[tuple[str, str, int], list[DoorRow]] = {}
        ratios: list[float] = []
        for n in concurrency:
            for index in range(rounds):
                this_round: dict[tuple[str, str], DoorRow] = {}
                for target, protocol, run in targets if index % 2 == 0 else targets[::-1]:
                    row = dataclasses.replace(run(n, seconds), target=target, protocol=protocol)
                    this_round[target, protocol] = row
                    measured.setdefault((target, protocol, n), []).append(row)
                peers = [r.faces_per_s for (t, _), r in this_round.items() if t != "edge runtime"]
                if n == max(concurrency) and peers and max(peers) > 0:
                    ours = this_round["edge runtime", "OIP (HTTP)"].faces_per_s
                    ratios.append(ours / max(peers))
    rows = [
        _median_row(measured[target, protocol, n])
        for n in concurrency
        for target, protocol, _ in targets
    ]
    return DoorRun(rows, skipped, ratios)


def _http(url: str, body: bytes, server: psutil.Process) -> Callable[[int, float], DoorRow]:
    return lambda n, seconds: http_row("", "", url, body, server, n, seconds)


def _mqtt_row(port: int, server: psutil.Process, n: int, seconds: float) -> DoorRow:
    before = _tree_cpu_s(server)
    mqtt = closed(port, n, seconds)
    cpu_ms = (_tree_cpu_s(server) - before) / max(1, mqtt.answered) * 1000
    return DoorRow("", "", n, mqtt.faces_per_s, mqtt.p50_ms, mqtt.p99_ms, cpu_ms, mqtt.errors)


def _median_row(rounds: list[DoorRow]) -> DoorRow:
    """The rounds' medians (errors summed), and how far faces/s moved between them."""
    rates = [r.faces_per_s for r in rounds]
    middle = statistics.median(rates)
    return DoorRow(
        rounds[0].target,
        rounds[0].protocol,
        rounds[0].concurrency,
        middle,
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
        statistics.median(r.cpu_ms_per_face for r in rounds),
        sum(r.errors for r in rounds),
        (max(rates) - min(rates)) / middle if middle else 0.0,
        len(rounds),
    )


def markdown(run: DoorRun) -> list[str]:
    """Part 7 as a Markdown table, skipped peers underneath."""
    lines = [
        "| target | protocol | in flight | faces/s (median) | moved between rounds | p50 ms | "
        "p99 ms | server CPU ms/face | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in run.rows:
        lines.append(
            f"| {r.target} | {r.protocol} | {r.concurrency} | {r.faces_per_s:,.0f} | "
            f"{r.moved:.0%} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_ms_per_face:.2f} | "
            f"{r.errors} |"
        )
    for s in run.skipped:
        lines.append(f"\n{s.target}: not measured ({s.reason}).")
    return lines
