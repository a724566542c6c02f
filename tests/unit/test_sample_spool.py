"""The edge's store and forward of hard examples, against an intake that answers what we tell
it: what is kept for later (401, 503, unreachable), what is given up (400), what is done (201,
200), and what survives a restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from aiohttp import web

from edge_runtime.metrics import Metrics
from edge_runtime.offload import samples as spool_module
from edge_runtime.offload.samples import SampleSpool
from edge_runtime.settings import SampleSettings
from edgeinfer.v1 import inference_pb2, samples_pb2
from tests.support.broker import free_port
from tests.support.until import until


def example(gray: int) -> samples_pb2.HardExample:
    pixels = np.full((8, 8, 1), gray, np.uint8)
    return samples_pb2.HardExample(
        device_id="cam",
        pixels=inference_pb2.Tensor(
            shape=[8, 8, 1], dtype=inference_pb2.DATA_TYPE_UINT8, data=pixels.tobytes()
        ),
        labels=["a", "b"],
        edge_probabilities=[0.5, 0.5],
    )


@contextlib.asynccontextmanager
async def intake(port: int, answers: list[int], seen: list[bytes]) -> AsyncIterator[None]:
    """Answers each upload with the next status of ``answers`` (then 201)."""
    tokens.clear()

    async def take(request: web.Request) -> web.Response:
        seen.append(await request.read())
        tokens.append(request.headers.get("Authorization", ""))
        return web.Response(status=answers.pop(0) if answers else 201)

    app = web.Application()
    app.router.add_post("/v1/samples", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


tokens: list[str] = []  # the Authorization headers of the uploads


def counted(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("edge_samples_total", {"result": result})
    return value or 0.0


@contextlib.asynccontextmanager
async def uploading(spool: SampleSpool) -> AsyncIterator[None]:
    task = asyncio.create_task(spool.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_refusals_that_may_pass_later_keep_the_example_and_malformed_is_given_up(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(spool_module, "_FIRST_PAUSE_S", 0.01)
    port = free_port()
    settings = SampleSettings(url=f"http://127.0.0.1:{port}", dir=str(tmp_path))
    metrics = Metrics()
    spool = SampleSpool(settings, metrics, token="t")  # noqa: S106 - a test token
    spool.keep(example(1))
    seen: list[bytes] = []
    async with uploading(spool):  # nothing listens yet: the example waits
        async with intake(port, [401, 503, 429], seen):
            await until(lambda: counted(metrics, "uploaded") == 1)
            assert len(seen) == 4  # three refusals to try again, then taken
            assert set(tokens) == {"Bearer t"}
            spool.keep(example(2))
            await until(lambda: counted(metrics, "uploaded") == 2)
        async with intake(port, [400], seen):
            spool.keep(example(3))
            await until(lambda: counted(metrics, "rejected") == 1)
    assert spool.waiting == 0
    assert samples_pb2.HardExample.FromString(seen[0]) == example(1)


async def test_what_waits_survives_a_restart_and_goes_when_the_intake_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = SampleSettings(url=f"http://127.0.0.1:{port}", dir=str(tmp_path))
    first = SampleSpool(settings, Metrics())
    first.keep(example(1))
    first.keep(example(1))  # one copy per face
    first.keep(example(2))
    assert first.waiting == 2
    metrics = Metrics()
    second = SampleSpool(settings, metrics)  # the runtime restarted
    assert metrics.registry.get_sample_value("edge_samples_waiting_bytes") > 0
    seen: list[bytes] = []
    async with intake(port, [], seen), uploading(second):
        await until(lambda: counted(metrics, "uploaded") == 2)
    assert second.waiting == 0
    assert metrics.registry.get_sample_value("edge_samples_waiting_bytes") == 0


async def test_a_face_seen_again_after_its_upload_is_a_duplicate_not_sent_twice(
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = SampleSettings(url=f"http://127.0.0.1:{port}", dir=str(tmp_path))
    metrics = Metrics()
    spool = SampleSpool(settings, metrics)
    seen: list[bytes] = []
    async with intake(port, [], seen), uploading(spool):
        spool.keep(example(1))
        await until(lambda: counted(metrics, "uploaded") == 1)
        spool.keep(example(1))  # the same face, once the intake has it
        spool.keep(example(2))
        await until(lambda: counted(metrics, "uploaded") == 2)
    assert (counted(metrics, "kept"), counted(metrics, "duplicate")) == (2, 1)
    assert len(seen) == 2
