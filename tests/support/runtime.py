"""A runtime in this test's event loop, or as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from edge_runtime import (
    Runtime,
    load_settings,
)
from edge_runtime.backends import load_model
from edge_runtime.settings import Settings
from tests.support.paths import REPO
from tests.support.until import until


def make_settings(broker_url: str, registry: Path, unique: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mqtt.broker": broker_url,
        "runtime_id": f"rt-{unique}",
        "topic_root": f"test-{unique}/v1",
        "model.registry": str(registry),
        "model.version": "1.0.0",  # the repo registry may hold newer versions (make demo)
        "metrics.port": 0,
        "http.port": 0,
        "twin.enabled": False,
        "mqtt.reconnect_min_s": 0.1,
        "mqtt.reconnect_max_s": 0.5,
    }
    values.update(overrides)
    return load_settings({}, None, values)


@contextlib.asynccontextmanager
async def running_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Start a runtime in this loop, wait until it is connected, stop it gracefully after."""
    model = await asyncio.to_thread(load_model, settings.model, settings.batch.max_size)
    await asyncio.to_thread(model.warm_up)
    runtime = Runtime(settings, model=model)
    task = asyncio.create_task(runtime.run(), name="test-runtime")
    try:
        if settings.mqtt.broker:
            await runtime.transport.wait_connected(10)
        else:  # the HTTP doors only
            await until(lambda: runtime.ready, 10, what="the runtime serving")
        yield runtime
    finally:
        runtime.stop()
        try:
            async with asyncio.timeout(15):
                await task
        finally:
            if not task.done():
                task.cancel()
            model.close()


def runtime_process(
    broker_url: str,
    registry: Path,
    runtime_id: str,
    topic_root: str,
    *extra: str,
    output: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """``edge-runtime`` as its own process: model 1.0.0 from ``registry``, no twin, no metrics
    port unless ``extra`` says otherwise (later flags win). Its log goes to ``output``, never to
    a pipe nobody reads (a full pipe blocks the writer: mosquitto stopped answering that way)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_runtime",
            "--broker",
            broker_url,
            "--runtime-id",
            runtime_id,
            "--topic-root",
            topic_root,
            "--model-registry",
            str(registry),
            "--model-version",
            "1.0.0",
            "--metrics-port",
            "0",
            "--http-port",
            "0",
            "--twin-enabled",
            "false",
            *extra,
        ],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=output,
        stderr=subprocess.STDOUT,
    )


async def wait_ready(base: str, timeout_s: float = 30.0) -> None:
    """Until ``base``/readyz answers 200 (a runtime started as its own process)."""

    async def ready() -> bool:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with session.get(f"{base}/readyz") as reply:
                return reply.status == 200
        return False

    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await until(ready, timeout_s, interval_s=0.1, what=f"{base}/readyz")
