"""Part 5 (so far): runtime cold start to ready, and its resident memory when idle."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

TARGET_COLD_START_S = 1.0
TARGET_RSS_MB = 120.0


@dataclass(frozen=True, slots=True)
class ResourceRow:
    """One measured runtime resource figure."""

    figure: str
    value: float
    unit: str
    target: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _process(command: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def measure(repo: Path, registry: Path, idle_s: float) -> list[ResourceRow]:
    """Start mosquitto and a runtime (LiteRT, float32); time to /readyz, then idle RSS."""
    broker_port, metrics_port = _free_port(), _free_port()
    with _process([str(repo / "scripts" / "broker"), str(broker_port)], repo):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", broker_port), 0.2),
            ):
                break
            time.sleep(0.05)
        command = [
            sys.executable,
            "-m",
            "edge_runtime",
            "--broker",
            f"mqtt://127.0.0.1:{broker_port}",
            "--metrics-port",
            str(metrics_port),
            "--model-registry",
            str(registry),
            "--model-version",
            "1.0.0",
        ]
        start = time.monotonic()
        with _process(command, repo) as runtime:
            url = f"http://127.0.0.1:{metrics_port}/readyz"
            while not _ready(url):
                if runtime.poll() is not None or time.monotonic() - start > 60:
                    raise RuntimeError("the runtime did not become ready; see its --help")
                time.sleep(0.01)
            cold_start = time.monotonic() - start
            time.sleep(idle_s)
            rss_mb = psutil.Process(runtime.pid).memory_info().rss / 2**20
    return [
        ResourceRow(
            "cold start to ready (process start, model load, broker)",
            cold_start,
            "s",
            f"≤ {TARGET_COLD_START_S:g} s",
        ),
        ResourceRow(
            "runtime RSS, idle (LiteRT, no TensorFlow)", rss_mb, "MB", f"≤ {TARGET_RSS_MB:g} MB"
        ),
    ]
