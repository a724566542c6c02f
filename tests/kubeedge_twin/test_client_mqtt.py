"""TwinClient against the stand-in over a real mosquitto, in both topic layouts."""

from __future__ import annotations

import asyncio

import pytest

from edge_runtime import MqttTransport
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceDefinition, DeviceRef, Layout, TwinClient, TwinError, TwinTopics

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("layout", [Layout.V1_4, Layout.V1_17])
async def test_get_report_and_desired_stream(broker, unique, layout):
    store = TwinStore()
    service = EdgecoreStandIn(broker.url, store, layout=layout, client_id=f"si-{unique}")
    service.start()
    name = f"cam-{unique}"
    service.add_devices([DeviceDefinition(name, desired={"capture_fps": ("5", "int")})])
    topics = TwinTopics(layout)
    transport: MqttTransport | None = None

    def publish(topic: str, payload: bytes) -> asyncio.Future[None]:
        assert transport is not None
        return transport.publish_nowait(topic, payload)

    client = TwinClient(DeviceRef(name), topics=topics, publish=publish)
    ghost = TwinClient(DeviceRef(f"ghost-{unique}"), topics=topics, publish=publish)
    transport = MqttTransport(
        broker.url,
        client_id=f"tc-{unique}",
        clean_start=True,
        session_expiry_s=0,
        subscriptions=client.subscriptions + ghost.subscriptions,
    )

    async def route() -> None:
        async for message in transport.messages():
            client.handle(message.topic, message.payload) or ghost.handle(
                message.topic, message.payload
            )

    try:
        async with transport, asyncio.TaskGroup() as tg:
            await transport.wait_connected(10)
            router = tg.create_task(route())
            twins = await client.get()
            assert twins["capture_fps"].expected.value == "5"
            assert twins["capture_fps"].type == "int"
            desired = aiter(client.desired())
            assert await anext(desired) == {"capture_fps": "5"}
            with pytest.raises(TwinError) as caught:
                await ghost.get()
            assert caught.value.code == 404
            await client.report({"capture_fps": "5"})
            service.set_desired(topics.device_id(DeviceRef(name)), {"capture_fps": "2"})
            async with asyncio.timeout(10):
                assert await anext(desired) == {"capture_fps": "2"}
            router.cancel()
    finally:
        service.stop()
        store.close()
