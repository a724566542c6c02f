"""Shared fixtures: a real mosquitto on a free loopback port, the registry model, MQTT clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Fuzzing: a fast slice in `make test`; `HYPOTHESIS_PROFILE=long` (make soak) runs 10,000 cases
# per target.
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile(
    "long", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A mosquitto on a free loopback port for the whole session."""
    started = start_broker(tmp_path_factory.mktemp("broker"))
    yield started
    stop_broker(started)


@pytest.fixture(scope="session")
def broker16(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """mosquitto 1.6.15 with KubeEdge's (default) configuration, for the whole session."""
    started = start_broker_16(tmp_path_factory.mktemp("broker16"))
    yield started
    stop_broker(started)


@pytest.fixture(params=["mosquitto-2.0", "mosquitto-1.6.15"])
def any_broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn: Debian's 2.0 with our settings, KubeEdge's 1.6.15 with its defaults."""
    name = "broker" if request.param == "mosquitto-2.0" else "broker16"
    broker: Broker = request.getfixturevalue(name)
    return broker


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model registry holding the pretrained FER model as emotion 1.0.0."""
    repo_registry = REPO / "models"
    if (repo_registry / "emotion" / "1.0.0" / "manifest.json").is_file():
        return repo_registry
    from cloud_trainer.pretrained import import_pretrained

    target = tmp_path_factory.mktemp("registry")
    import_pretrained(target)
    return target


@pytest.fixture
def unique() -> str:
    """A short id unique to this test run, for topics and client ids."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """Fail the test if the event loop reports an unhandled error."""
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield errors
    assert not errors, errors


def edgecore_binary(version: str) -> str:
    """KubeEdge's real edgecore for ``version``: $EDGECORE_BIN (for the DMI release), else built
    once from KubeEdge's source by scripts/build-edgecore (minutes the first time, cached).

    Skipped, with the build script's reason, only when no source could be had; a build that
    fails is a failure (EDGE_REQUIRE_EDGECORE=1 makes a missing source fail too).
    """
    own = os.environ.get("EDGECORE_BIN", "")
    if own and version != "v1.4.0":
        return own
    built = subprocess.run(
        [str(REPO / "scripts" / "build-edgecore"), version], capture_output=True, text=True
    )
    if built.returncode == 2 and os.environ.get("EDGE_REQUIRE_EDGECORE") != "1":
        pytest.skip(f"edgecore {version} unavailable: {built.stderr.strip()}")
    if built.returncode != 0:
        pytest.fail(f"cannot build edgecore {version}: {built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1]
