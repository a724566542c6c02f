"""The processes a benchmark starts: mosquitto and the edge runtime, each stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(command: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (output discarded); SIGTERM it on exit, kill it if it lingers."""
    started = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        # BENCH_LOGS=1 shows the servers' logs (the runtime's thread choice, the broker's).
        stderr=None if os.environ.get("BENCH_LOGS") else subprocess.DEVNULL,
    )
    try:
        yield started
    finally:
        started.send_signal(signal.SIGTERM)
        try:
            started.wait(10)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


def ready(url: str) -> bool:
    """Whether ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_port(port: int) -> None:
    """Wait until something listens on loopback ``port``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


@contextlib.contextmanager
def broker_process(repo: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A fresh mosquitto with the repository's development settings; its port and process."""
    port = free_port()
    with process([str(repo / "scripts" / "broker"), str(port)], repo) as started:
        wait_port(port)
        yield port, started


@contextlib.contextmanager
def broker(repo: Path) -> Iterator[int]:
    """A fresh mosquitto with the repository's development settings; yields its port."""
    with broker_process(repo) as (port, _):
        yield port


@contextlib.contextmanager
def runtime(
    repo: Path,
    port: int,
    registry: Path,
    *extra: str,
    version: str = "1.0.0",
    runtime_id: str = "bench",
    metrics_port: int = 0,
) -> Iterator[subprocess.Popen[bytes]]:
    """The edge runtime (LiteRT, defaults) serving ``version``, once /readyz answers on
    ``metrics_port`` (0: a free one). Later flags in ``extra`` win."""
    metrics_port = metrics_port or free_port()
    command = [
        sys.executable, "-m", "edge_runtime", "--broker", f"mqtt://127.0.0.1:{port}",
        "--runtime-id", runtime_id, "--metrics-port", str(metrics_port), "--http-port", "0",
        "--model-registry", str(registry), "--model-version", version, "--log-level", "WARNING",
        *extra,
    ]  # fmt: skip
    with process(command, repo) as started:
        deadline = time.monotonic() + 60
        while not ready(f"http://127.0.0.1:{metrics_port}/readyz"):
            if started.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the runtime did not become ready; see its --help")
            time.sleep(0.01)
        yield started
