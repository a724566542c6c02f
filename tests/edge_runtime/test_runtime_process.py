"""The runtime as a process: SIGTERM drains, the session survives restarts, Last Will."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator

import pytest

from edge_runtime import Request, Status
from tests.support.devices import Device, device, face
from tests.support.runtime import runtime_process

pytestmark = pytest.mark.integration


def _start(broker_url: str, registry, unique: str, *extra: str) -> subprocess.Popen[bytes]:
    return runtime_process(broker_url, registry, f"rt-{unique}", f"proc-{unique}/v1", *extra)


async def _state(watcher: Device) -> bytes:
    async with asyncio.timeout(20):
        while True:
            message = await watcher.other.get()
            if message.topic.endswith("/state"):
                return message.payload


async def _wait_state(watcher: Device, expected: bytes) -> None:
    while (await _state(watcher)) != expected:
        pass


@contextlib.asynccontextmanager
async def watching(broker_url: str, unique: str, name: str) -> AsyncIterator[Device]:
    root = f"proc-{unique}/v1"
    async with device(broker_url, root, name, (f"{root}/runtime/rt-{unique}/state",)) as d:
        yield d


async def _exit_code(process: subprocess.Popen[bytes], timeout_s: float = 20) -> int:
    code = await asyncio.wait_for(asyncio.to_thread(process.wait), timeout_s)
    if process.stdout is not None:
        process.stdout.close()
    return code


async def test_sigterm_drains_in_flight_requests_and_exits_zero(broker, registry, unique):
    process = _start(
        broker.url,
        registry,
        unique,
        "--batch-max-size",
        "2",
        "--batch-max-wait-s",
        "0",
        "--limits-max-faces-per-request",
        "1",
    )
    try:
        async with watching(broker.url, unique, "cam") as cam:
            await _wait_state(cam, b"online")
            for i in range(200):
                cam.transport.publish_nowait(
                    cam.request_topic(),
                    __import__("edge_runtime").encode_request(
                        Request(f"s{i}", "cam", 0, (face(i),))
                    ),
                )
            first = await cam.receive(1)
            process.send_signal(signal.SIGTERM)
            assert await _exit_code(process) == 0
            await _wait_state(cam, b"offline")
            answered = {r.request_id for r in first}
            while not cam.responses.empty():
                answered.add(cam.responses.get_nowait()[1].request_id)
            # Whatever the first process did not take stays with the broker; a restart answers it.
            restarted = _start(broker.url, registry, unique)
            try:
                # (it may have nothing left to answer: the drain often finishes all 200)
                await _wait_state(cam, b"online")
                async with asyncio.timeout(30):
                    while len(answered) < 200:
                        _, response, _ = await cam.responses.get()
                        assert response.status is Status.OK
                        answered.add(response.request_id)
            finally:
                restarted.send_signal(signal.SIGTERM)
                assert await _exit_code(restarted) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert answered == {f"s{i}" for i in range(200)}


async def test_request_published_while_runtime_is_down_is_answered_after_restart(
    broker, registry, unique
):
    process = _start(broker.url, registry, unique)
    async with watching(broker.url, unique, "cam") as cam:
        await _wait_state(cam, b"online")
        process.send_signal(signal.SIGTERM)
        assert await _exit_code(process) == 0
        await _wait_state(cam, b"offline")
        await cam.send(Request("while-down", "cam", 0, (face(1),)))
        process = _start(broker.url, registry, unique)
        try:
            (response,) = await cam.receive(1, timeout_s=30)
        finally:
            process.send_signal(signal.SIGTERM)
            await _exit_code(process)
    assert response.request_id == "while-down"
    assert response.status is Status.OK


async def test_last_will_reports_offline_when_the_runtime_dies(broker, registry, unique):
    process = _start(broker.url, registry, unique, "--mqtt-keepalive-s", "2")
    async with watching(broker.url, unique, "cam") as cam:
        await _wait_state(cam, b"online")
        process.kill()  # no graceful offline publish: only the Will can say it
        assert await _exit_code(process) == -signal.SIGKILL
        assert await _state(cam) == b"offline"  # the next state anyone hears is the Will
