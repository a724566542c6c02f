"""Replicas sharing the requests through an MQTT v5 shared subscription: one is SIGKILLed under
load and stays down; every request is answered (by a retry that reaches a survivor)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import urllib.request

import pytest

from edge_runtime import InferenceClient, MqttTransport, Request, RetryPolicy, Status, Topics
from tests.support.broker import free_port
from tests.support.devices import face
from tests.support.runtime import runtime_process, wait_ready

pytestmark = pytest.mark.integration


def _replica(url: str, registry, root: str, name: str, port: int) -> subprocess.Popen[bytes]:
    return runtime_process(
        url,
        registry,
        name,
        root,
        "--share-group",
        "emotion",
        "--metrics-port",
        str(port),
        "--http-port",
        "0",
        "--metrics-host",
        "127.0.0.1",
        output=subprocess.DEVNULL,
    )


def _answered(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("edge_requests_total{")
    )


async def test_a_replica_killed_under_load_loses_nothing(any_broker, registry, unique):
    root = f"replicas-{unique}/v1"
    ports = [free_port(), free_port()]
    replicas = [
        _replica(any_broker.url, registry, root, f"{unique}-r{i}", port)
        for i, port in enumerate(ports)
    ]
    try:
        await asyncio.gather(*(wait_ready(f"http://127.0.0.1:{port}") for port in ports))
        topics = Topics(root)
        policy = RetryPolicy(first_wait_s=0.5, max_wait_s=2.0, deadline_s=30.0)
        outcomes: list[Status | BaseException] = []
        stop = asyncio.Event()

        async def camera(name: str) -> None:
            transport = MqttTransport(
                any_broker.url, client_id=f"{name}-{unique}", clean_start=True, session_expiry_s=0
            )
            client = InferenceClient(transport, name, topics=topics, policy=policy)
            for topic, qos in client.subscriptions:
                transport.subscribe(topic, qos)
            async with transport, asyncio.TaskGroup() as tg:
                await transport.wait_connected(10)
                receiver = tg.create_task(client.receive())
                number = 0
                while not stop.is_set():
                    number += 1
                    batch = [
                        client.infer(Request(f"{name}-{number}-{k}", name, 0, (face(k),)))
                        for k in range(4)
                    ]
                    for outcome in await asyncio.gather(*batch, return_exceptions=True):
                        outcomes.append(
                            outcome.status if not isinstance(outcome, BaseException) else outcome
                        )
                receiver.cancel()

        async with asyncio.TaskGroup() as tg:
            for d in range(4):
                tg.create_task(camera(f"cam{d}"))
            await asyncio.sleep(2.0)
            replicas[0].send_signal(signal.SIGKILL)  # and it stays down
            replicas[0].wait(10)
            survivor_before = await asyncio.to_thread(_answered, ports[1])
            await asyncio.sleep(3.0)
            stop.set()
        survivor_after = await asyncio.to_thread(_answered, ports[1])
    finally:
        for process in replicas:
            if process.poll() is None:
                process.terminate()
                process.wait(15)
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert not lost, f"{len(lost)} of {len(outcomes)} lost: {lost[0]!r}"
    assert set(outcomes) == {Status.OK}
    assert survivor_after > survivor_before  # the load moved to the survivor
