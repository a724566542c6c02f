"""Shared fixtures: a real mosquitto on a free loopback port, the registry model, MQTT clients."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.broker import Broker, start_broker, start_broker_16, stop_broker
from tests.support.paths import REPO

# Fuzzing: a fast slice in `make test`; `HYPOTHESIS_PROFILE=long` (make soak) runs 10,000 cases
# per target.
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile(
    "long", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
