"""A real mosquitto on a free loopback port: Debian's 2.0, or KubeEdge's 1.6.15 built once."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 0
max_inflight_messages 0
persistence false
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def start_broker(
    directory: Path, port: int | None = None, conf: str | None = None, binary: str | None = None
) -> Broker:
    binary = binary or _mosquitto()
    if binary is None:
        if os.environ.get("EDGE_REQUIRE_BROKER") == "1":
            pytest.fail("mosquitto is required (EDGE_REQUIRE_BROKER=1) but not installed")
        pytest.skip("mosquitto not installed; run `make test` to install it")
    port = port or free_port()
    conf_file = directory / f"mosquitto-{port}.conf"
    conf_file.write_text(conf if conf is not None else MOSQUITTO_CONF.format(port=port))
    # A log file, never an unread pipe: mosquitto logs every connection to stderr, and once a
    # pipe's 64 KiB were full (about 200 connections) it blocked writing and stopped answering.
    log_file = directory / f"mosquitto-{port}.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen([binary, "-c", str(conf_file)], stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return Broker("127.0.0.1", port, process)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(f"mosquitto did not start: {log_file.read_text(errors='replace')[-2000:]!r}")


def mosquitto_16() -> str:
    """mosquitto 1.6.15, KubeEdge's broker, built once (seconds) by scripts/build-mosquitto-1.6.

    Skipped, with the reason, only when its source cannot be had (no ../shared/brokers and no
    route to mosquitto.org); a build that fails is a failure.
    """
    built = subprocess.run(
        [str(REPO / "scripts" / "build-mosquitto-1.6")], capture_output=True, text=True
    )
    if built.returncode == 2:
        pytest.skip(f"mosquitto 1.6.15 unavailable: {built.stderr.strip()}")
    if built.returncode != 0:
        pytest.fail(f"cannot build mosquitto 1.6.15: {built.stderr}")
    return built.stdout.strip()


# KubeEdge's chart runs eclipse-mosquitto:1.6.15 with the image's default configuration: every
# limit at its default (max_inflight_messages 20, max_queued_messages 100 per client).
MOSQUITTO_16_DEFAULT_CONF = "listener {port} 127.0.0.1\n"


def start_broker_16(directory: Path, port: int | None = None) -> Broker:
    """mosquitto 1.6.15 with its default configuration on a free loopback port."""
    port = port or free_port()
    return start_broker(
        directory, port, MOSQUITTO_16_DEFAULT_CONF.format(port=port), binary=mosquitto_16()
    )


def stop_broker(broker: Broker) -> None:
    broker.process.terminate()
    try:
        broker.process.wait(5)
    except subprocess.TimeoutExpired:
        broker.process.kill()
        broker.process.wait()
    if broker.process.stderr is not None:
        broker.process.stderr.close()
