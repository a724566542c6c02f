"""Device-side clients: raw (every answer kept) or with the retry policy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_runtime import (
    FacePixels,
    InboundMessage,
    InferenceClient,
    MqttTransport,
    Request,
    Response,
    RetryPolicy,
    Topics,
    WireFormat,
    decode_response,
    encode_request,
)


def face(seed: int, size: int = 64, channels: int = 1) -> FacePixels:
    rng = np.random.default_rng(seed)
    return FacePixels(rng.integers(0, 256, (size, size, channels), dtype=np.uint8))


@dataclass
class Device:
    """A device-side client collecting responses on its result topic."""

    transport: MqttTransport
    root: str
    name: str
    responses: asyncio.Queue[tuple[str, Response, bytes | None]] = field(
        default_factory=asyncio.Queue
    )
    other: asyncio.Queue[InboundMessage] = field(default_factory=asyncio.Queue)

    def request_topic(self) -> str:
        return f"{self.root}/{self.name}/request"

    async def send(
        self,
        request: Request | bytes,
        *,
        wire: WireFormat = WireFormat.PROTOBUF,
        content_type: str = "",
        topic: str | None = None,
        response_topic: str = "",
        correlation_data: bytes | None = None,
    ) -> None:
        payload = request if isinstance(request, bytes) else encode_request(request, wire)
        await self.transport.publish(
            topic or self.request_topic(),
            payload,
            qos=1,
            content_type=content_type,
            response_topic=response_topic,
            correlation_data=correlation_data,
        )

    async def receive(self, count: int, timeout_s: float = 10.0) -> list[Response]:
        results = []
        async with asyncio.timeout(timeout_s):
            for _ in range(count):
                results.append((await self.responses.get())[1])
        return results


@contextlib.asynccontextmanager
async def device(
    broker_url: str,
    root: str,
    name: str,
    extra_topics: tuple[str, ...] = (),
    *,
    max_outgoing_inflight: int = 20,
) -> AsyncIterator[Device]:
    """Connect a device client subscribed to its result topic (and ``extra_topics``)."""
    topics = [(f"{root}/{name}/result", 1), *[(t, 1) for t in extra_topics]]
    transport = MqttTransport(
        broker_url,
        client_id=f"dev-{name}-{id(topics)}",
        subscriptions=topics,
        clean_start=True,
        session_expiry_s=0,
        max_outgoing_inflight=max_outgoing_inflight,
    )
    dev = Device(transport, root, name)

    async def pump() -> None:
        async for message in transport.messages():
            wire = (
                WireFormat.JSON
                if message.content_type == "application/json"
                else WireFormat.PROTOBUF
            )
            own_result = message.topic == f"{root}/{name}/result"
            if own_result or message.correlation_data is not None:
                dev.responses.put_nowait(
                    (
                        message.topic,
                        decode_response(message.payload, wire),
                        message.correlation_data,
                    )
                )
            else:
                dev.other.put_nowait(message)

    async with transport:
        await transport.wait_connected(10)
        task = asyncio.create_task(pump())
        try:
            yield dev
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def retrying_device(
    broker_url: str, root: str, name: str, policy: RetryPolicy, **transport: Any
) -> AsyncIterator[InferenceClient]:
    """A device with the retry client, receiving its answers until the block ends."""
    topics = Topics(root)
    options: dict[str, Any] = {"clean_start": True, "session_expiry_s": 0, **transport}
    mqtt = MqttTransport(broker_url, client_id=f"dev-{name}-{id(topics)}", **options)
    client = InferenceClient(mqtt, name, topics=topics, policy=policy)
    for topic, qos in client.subscriptions:
        mqtt.subscribe(topic, qos)
    async with mqtt:
        await mqtt.wait_connected(10)
        receiver = asyncio.create_task(client.receive())
        try:
            yield client
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
