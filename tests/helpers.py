"""Test helpers: run a runtime in-process, and a device-side MQTT client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_runtime import (
    FacePixels,
    InboundMessage,
    InferenceClient,
    MqttTransport,
    Request,
    Response,
    RetryPolicy,
    Runtime,
    Topics,
    WireFormat,
    decode_response,
    encode_request,
    load_settings,
)
from edge_runtime.backends import load_model
from edge_runtime.settings import Settings
from edgeinfer.twins import MODEL_TWINS
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceDefinition, Layout
from tests.conftest import REPO

# KubeEdge's interface files, vendored by tag (third_party/kubeedge/README.md).
KUBEEDGE_FILES = REPO / "third_party" / "kubeedge"


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
        await runtime.transport.wait_connected(10)
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


@contextlib.contextmanager
def standin(broker: Any, layout: Layout, *device_names: str) -> Iterator[EdgecoreStandIn]:
    """The edgecore stand-in on ``broker`` with runtime devices holding the model twins."""
    twin_store = TwinStore()
    service = EdgecoreStandIn(
        broker.url, twin_store, layout=layout, client_id=f"standin-{device_names[0]}"
    )
    service.start()
    service.add_devices(
        [
            DeviceDefinition(name, desired={n: ("", "string") for n in MODEL_TWINS})
            for name in device_names
        ]
    )
    try:
        yield service
    finally:
        service.stop()
        twin_store.close()


def reported_twins(service: EdgecoreStandIn, device_id: str) -> dict[str, str]:
    """The non-empty reported (actual) twin values of ``device_id`` in the stand-in."""
    device = service.engine.device(device_id)
    assert device is not None
    return {n: t.actual.value for n, t in device.twins.items() if t.actual and t.actual.value}


@contextlib.contextmanager
def dmi_standin(
    broker: Any, sockets: Path, client_id: str, *definitions: DeviceDefinition
) -> Iterator[EdgecoreStandIn]:
    """The stand-in playing KubeEdge 1.23 (DMI on ``sockets``/dmi.sock), 1.17 topic layout."""
    twin_store = TwinStore()
    service = EdgecoreStandIn(
        broker.url,
        twin_store,
        layout=Layout.V1_17,
        client_id=client_id,
        dmi_socket=str(sockets / "dmi.sock"),
    )
    service.start()
    service.add_devices(definitions)
    try:
        yield service
    finally:
        service.stop()
        twin_store.close()


@contextlib.contextmanager
def socket_directory() -> Iterator[Path]:
    """A short directory for Unix sockets (their paths must stay under 108 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dmi-") as directory:
        yield Path(directory)


def crd_schema(kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of KubeEdge's CRD for ``kind`` (v1alpha2: v1.4.0, v1beta1: v1.23.1)."""
    tag = "v1.4.0" if version == "v1alpha2" else "v1.23.1"
    crd_file = KUBEEDGE_FILES / tag / "crds" / f"devices_{version}_{kind.lower()}.yaml"
    if not crd_file.is_file():
        pytest.fail(f"KubeEdge CRD {crd_file} not found (third_party/kubeedge)")
    crd = yaml.safe_load(crd_file.read_text())
    if "validation" in crd["spec"]:  # apiextensions v1beta1 (KubeEdge 1.4)
        schema: dict[str, Any] = crd["spec"]["validation"]["openAPIV3Schema"]
        return schema
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = served["schema"]["openAPIV3Schema"]
            return schema
    pytest.fail(f"{crd_file} does not serve {version}")
