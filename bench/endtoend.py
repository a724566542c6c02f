"""Parts 2-5 over MQTT: the naive peer, the runtime end to end, a swap under load, and the
runtime's RSS and CPU under load. Each server runs in its own process on a fresh mosquitto."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from bench import ceiling
from bench.load import Load, LoadResult
from bench.processes import broker, broker_process, process, runtime
from edgeinfer.twins import MODEL_SHA256, MODEL_URI, MODEL_VERSION, RUNTIME_TWINS
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceDefinition

SWAP_VERSION = "1.0.1"


@dataclass(frozen=True, slots=True)
class SwapResult:
    """A model push during an open-loop run."""

    rate: float
    errors: int
    lost: int
    steady_p99_ms: float
    swap_p99_ms: float
    window_s: float  # "during the swap": requests sent in this window after the push


@dataclass(frozen=True, slots=True)
class UnderLoad:
    """The runtime process while serving its maximum closed-loop load, and what the broker and
    the load generator spent beside it (CPU milliseconds per face answered)."""

    rss_mb: float
    cpu_s_per_1000_faces: float
    broker_cpu_ms_per_face: float = 0.0
    load_cpu_ms_per_face: float = 0.0

    @property
    def total_cpu_ms_per_face(self) -> float:
        """Runtime, broker and load generator together."""
        return self.cpu_s_per_1000_faces + self.broker_cpu_ms_per_face + self.load_cpu_ms_per_face


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@contextlib.contextmanager
def naive_peer(repo: Path, port: int, model: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The naive per-message server, answering."""
    command = [
        sys.executable, "-m", "bench.naive_peer", "--broker-port", str(port),
        "--model", str(model),
    ]  # fmt: skip
    with process(command, repo) as started:
        probe = Load(port, 1)
        try:
            deadline = time.monotonic() + 30
            while probe.answered == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the naive peer never answered")
                probe.send("bench-000")
                probe.pump(0.2)
        finally:
            probe.close()
        yield started


def closed(
    port: int, devices: int, seconds: float, window: Callable[[], None] | None = None
) -> LoadResult:
    """One closed-loop run with ``devices`` requests in flight (``window``: see closed_loop)."""
    load = Load(port, devices)
    try:
        return load.closed_loop(seconds, window=window)
    finally:
        load.close()


class CpuWindow:
    """CPU seconds ``processes`` spent between the two calls of a measured window."""

    def __init__(self, *processes: psutil.Process) -> None:
        self._processes = processes
        self._marks: list[list[float]] = []

    def __call__(self) -> None:
        self._marks.append([_cpu_s(p) for p in self._processes])

    def spent(self) -> list[float]:
        """Seconds per process over the window."""
        start, stop = self._marks[-2], self._marks[-1]
        return [b - a for a, b in zip(start, stop, strict=True)]


def open_at(port: int, rate: float, seconds: float) -> LoadResult:
    """One open-loop run at ``rate`` requests/s."""
    load = Load(port, 64)
    try:
        return load.open_loop(rate, seconds)
    finally:
        load.close()


@dataclass(frozen=True, slots=True)
class HeadToHead:
    """Interleaved maximum-load rounds of the naive peer and the runtime, with the machine's
    own speed (the interpreter alone) measured between them."""

    naive: list[LoadResult]
    runtime: list[LoadResult]
    runtime_cpu_ms_per_face: list[float]  # the runtime process, per face answered, per round
    interpreter_ms_per_face: list[float]  # float32, 1 thread, best of batch 1 and 8, per round
    stolen: list[float]  # share of the machine's CPU time the hypervisor took, per round

    @staticmethod
    def median(rows: list[LoadResult]) -> LoadResult:
        """The round with the median throughput."""
        return sorted(rows, key=lambda r: r.faces_per_s)[len(rows) // 2]

    @property
    def ratios(self) -> list[float]:
        """Runtime over naive peer, round by round (each pair met the same weather)."""
        return [
            r.faces_per_s / n.faces_per_s for r, n in zip(self.runtime, self.naive, strict=True)
        ]

    @property
    def vs_naive(self) -> float:
        """The median of the per-round ratios."""
        return float(np.median(self.ratios))

    @property
    def cpu_vs_interpreter(self) -> float:
        """The runtime's CPU per face over the interpreter's own, medians of the rounds."""
        return float(
            np.median(self.runtime_cpu_ms_per_face) / np.median(self.interpreter_ms_per_face)
        )

    @staticmethod
    def spread(values: list[float]) -> float:
        """(max - min) / median: how much a figure moved between rounds."""
        middle = float(np.median(values))
        return (max(values) - min(values)) / middle if middle else 0.0


def interpreter_ms_per_face(model: Path, seconds: float) -> float:
    """The interpreter alone (float32, 1 thread), the better of batch 1 and 8: the machine's
    speed right now."""
    best = max(
        (ceiling.measure(model, "float32", 1, batch, seconds) for batch in (1, 8)),
        key=lambda r: r.faces_per_s,
    )
    return 1000 / best.faces_per_s


def head_to_head(
    repo: Path, registry: Path, model: Path, seconds: float, rounds: int
) -> HeadToHead:
    """Parts 2-3's maximum: the naive peer (32 in flight) and the runtime (256 in flight) in
    interleaved closed-loop rounds, order alternating, the interpreter timed alone between."""
    naive_rows, runtime_rows, cpu, probe, stolen = [], [], [], [], []
    with (
        broker(repo) as naive_port,
        naive_peer(repo, naive_port, model),
        broker(repo) as runtime_port,
        runtime(repo, runtime_port, registry) as served,
    ):
        server = psutil.Process(served.pid)
        for index in range(rounds):
            probe.append(interpreter_ms_per_face(model, min(0.5, seconds / 4)))
            steal = Steal()
            for which in ("naive", "runtime") if index % 2 == 0 else ("runtime", "naive"):
                if which == "naive":
                    naive_rows.append(closed(naive_port, 32, seconds))
                    continue
                window = CpuWindow(server)
                row = closed(runtime_port, 256, seconds, window)
                runtime_rows.append(row)
                cpu.append(window.spent()[0] / max(1.0, row.faces_per_s * seconds) * 1000)
            stolen.append(steal.share())
    return HeadToHead(naive_rows, runtime_rows, cpu, probe, stolen)


class Steal:
    """The share of the machine's CPU time its hypervisor gave to others since creation (a
    virtual machine's neighbours: what makes rounds minutes apart disagree)."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), _stolen_s())

    def share(self) -> float:
        """Stolen CPU seconds over wall seconds times cores."""
        wall = time.monotonic() - self._start[0]
        cores = psutil.cpu_count() or 1
        return (_stolen_s() - self._start[1]) / (wall * cores) if wall > 0 else 0.0


def _stolen_s() -> float:
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def measure_runtime(
    repo: Path, registry: Path, seconds: float, in_flight: tuple[int, ...]
) -> tuple[list[LoadResult], list[LoadResult], UnderLoad]:
    """Part 3 and part 5 under load: closed loop per in-flight count, open loop at 25/50/75 %."""
    with broker_process(repo) as (port, mosquitto), runtime(repo, port, registry) as process:
        closed_rows = []
        under_load = UnderLoad(0.0, 0.0)
        server, broker_proc, me = (
            psutil.Process(process.pid),
            psutil.Process(mosquitto.pid),
            psutil.Process(),
        )
        for devices in in_flight:
            window = CpuWindow(server, broker_proc, me)
            row = closed(port, devices, seconds, window)
            spent = window.spent()
            closed_rows.append(row)
            if row.faces_per_s == max(r.faces_per_s for r in closed_rows):
                faces = max(1.0, row.faces_per_s * seconds)
                per_face_ms = [s / faces * 1000 for s in spent]
                under_load = UnderLoad(server.memory_info().rss / 2**20, *per_face_ms)
        best = max(r.faces_per_s for r in closed_rows)
        open_rows = [open_at(port, best * share, seconds) for share in (0.25, 0.5, 0.75)]
    return closed_rows, open_rows, under_load


def _second_version(registry: Path, target: Path) -> tuple[str, str]:
    """Copy 1.0.0 as SWAP_VERSION; its file:// manifest URI and manifest sha256."""
    source = registry / "emotion" / "1.0.0"
    destination = target / "emotion" / SWAP_VERSION
    shutil.copytree(target / "emotion" / "1.0.0", destination)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["version"] = SWAP_VERSION
    text = json.dumps(manifest, indent=2)
    (destination / "manifest.json").write_text(text)
    return (destination / "manifest.json").as_uri(), hashlib.sha256(text.encode()).hexdigest()


def measure_swap(repo: Path, registry: Path, rate: float, seconds: float) -> SwapResult:
    """Part 4: push a new version through the twin a third of the way into an open-loop run."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copytree(registry / "emotion" / "1.0.0", work / "registry" / "emotion" / "1.0.0")
        uri, sha = _second_version(registry, work / "registry")
        with broker(repo) as port:
            store = TwinStore()
            standin = EdgecoreStandIn(f"mqtt://127.0.0.1:{port}", store, client_id="bench-ec")
            standin.start()
            device = "emotion-runtime-bench"
            twins = {name: ("", "string") for name in RUNTIME_TWINS}
            standin.add_devices([DeviceDefinition(device, desired=twins)])
            pushed: list[float] = []

            def push() -> None:
                pushed.append(time.perf_counter())
                standin.set_desired(
                    device, {MODEL_VERSION: SWAP_VERSION, MODEL_URI: uri, MODEL_SHA256: sha}
                )

            try:
                with runtime(
                    repo, port, work / "registry", "--twin-enabled", "true",
                    "--twin-cache-dir", str(work / "cache"),
                ):  # fmt: skip
                    load = Load(port, 64)
                    try:
                        load.open_loop(rate, 1.0)  # warm-up: "steady" is warm, as in part 3
                        result = load.open_loop(rate, seconds, at=(seconds / 3, push))
                        samples = list(load.samples)
                    finally:
                        load.close()
                    reported = standin.engine.device(device)
                    twin = reported.twins.get(MODEL_VERSION) if reported else None
                    served = twin.actual.value if twin and twin.actual else ""
            finally:
                standin.stop()
                store.close()
        if served != SWAP_VERSION or not pushed:
            raise RuntimeError(f"the swap did not happen (reported {served!r})")
        start = pushed[0]
        steady = [lat for at, lat in samples if at < start]
        during = [lat for at, lat in samples if start <= at < start + 2.0]
        return SwapResult(
            rate,
            result.errors,
            result.lost,
            float(np.percentile(steady, 99) * 1000) if steady else 0.0,
            float(np.percentile(during, 99) * 1000) if during else 0.0,
            2.0,
        )


@dataclass(frozen=True, slots=True)
class Contended:
    """The runtime and the naive peer at one open-loop rate, alone and beside a busy-looping
    process, in the same alternating rounds."""

    rate: float
    settle_s: float  # the neighbour ran this long before a contended round was measured
    alone: list[LoadResult]
    contended: list[LoadResult]
    naive_alone: list[LoadResult] = dataclasses.field(default_factory=list)
    naive_contended: list[LoadResult] = dataclasses.field(default_factory=list)

    @property
    def p99_ratio(self) -> float:
        """Median contended p99 over median p99 alone."""
        return _p99_ratio(self.alone, self.contended)

    @property
    def naive_p99_ratio(self) -> float:
        """The same for the naive peer."""
        return _p99_ratio(self.naive_alone, self.naive_contended)


def _p99_ratio(alone: list[LoadResult], contended: list[LoadResult]) -> float:
    if not alone or not contended:
        return 0.0
    base = float(np.median([r.p99_ms for r in alone]))
    return float(np.median([r.p99_ms for r in contended])) / base if base else 0.0


@contextlib.contextmanager
def busy_neighbour() -> Iterator[subprocess.Popen[bytes]]:
    """Another process keeping one core busy, as a neighbouring pod might."""
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield neighbour
    finally:
        neighbour.kill()
        neighbour.wait()


def measure_contended(
    repo: Path,
    registry: Path,
    model: Path,
    rate: float,
    seconds: float,
    rounds: int,
    settle_s: float = 1.0,
) -> Contended:
    """Open loop at ``rate``: the runtime and the naive peer (``model``), each on its own broker
    and up throughout, alone and beside ``busy_neighbour``; rounds alternate which goes first.
    The naive peer's figures are the machine's: what hand-written serving gets here."""
    found: dict[str, tuple[list[LoadResult], list[LoadResult]]] = {
        "runtime": ([], []),
        "naive": ([], []),
    }
    with contextlib.ExitStack() as stack:
        ports = {
            "runtime": stack.enter_context(broker(repo)),
            "naive": stack.enter_context(broker(repo)),
        }
        stack.enter_context(runtime(repo, ports["runtime"], registry))
        stack.enter_context(naive_peer(repo, ports["naive"], model))
        for port in ports.values():
            open_at(port, rate, 1.0)  # warm-up
        for index in range(rounds):
            for who in ("runtime", "naive") if index % 2 == 0 else ("naive", "runtime"):
                alone, contended = found[who]
                alone.append(open_at(ports[who], rate, seconds))
                with busy_neighbour():
                    time.sleep(settle_s)
                    contended.append(open_at(ports[who], rate, seconds))
                time.sleep(settle_s)
    return Contended(rate, settle_s, *found["runtime"], *found["naive"])
