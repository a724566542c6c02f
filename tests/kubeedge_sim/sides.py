"""The two KubeEdges a conformance scenario runs against: our stand-in and the real edgecore.

Both offer what a scenario needs from "KubeEdge": apply Devices (as kubectl apply would), edit
desired values in the cloud, read what the cloud holds as reported, stop and start edgecore.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from edge_runtime import MqttTransport
from kubeedge_sim.cloudhub import Report
from kubeedge_sim.edgecore import CURRENT, LEGACY
from kubeedge_sim.node import EdgeNode, load_documents
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceRef, Layout, TwinClient, TwinTopics
from kubeedge_twin.crd import definitions
from kubeedge_twin.dmi.mapper import DmiMapper, DmiTwin
from tests.support.kubeedge import edgecore_binary
from tests.support.paths import REPO
from tests.support.until import until

NODE = "node-a"
DEPLOY = REPO / "deploy" / "kubeedge"
RUNTIME = "emotion-runtime-demo-node"


class Side(Protocol):
    name: str
    dmi_directory: Path

    async def apply(self, documents: Iterable[Mapping[str, Any]]) -> None: ...
    async def set_desired(self, device_id: str, values: Mapping[str, str]) -> None: ...
    def reported(self, device_id: str) -> dict[str, str]: ...
    def device_status(self, device_id: str) -> dict[str, Any] | None: ...
    async def stop_edgecore(self) -> None: ...
    async def start_edgecore(self) -> None: ...


class RealSide:
    """KubeEdge's edgecore (built from source) behind our CloudHub."""

    def __init__(self, node: EdgeNode) -> None:
        self.name = f"edgecore {node.version}"
        self.node = node
        self.dmi_directory = node.dmi_directory

    async def apply(self, documents: Iterable[Mapping[str, Any]]) -> None:
        await self.node.apply(documents)

    async def set_desired(self, device_id: str, values: Mapping[str, str]) -> None:
        await self.node.hub.set_desired(device_id, values)

    def reported(self, device_id: str) -> dict[str, str]:
        return dict((self.node.hub.reports.get(device_id) or Report()).reported)

    def device_status(self, device_id: str) -> dict[str, Any] | None:
        return self.node.hub.device_status(device_id)

    async def stop_edgecore(self) -> None:
        assert self.node.edgecore is not None
        await self.node.edgecore.stop()

    async def start_edgecore(self) -> None:
        await self.node.start_edgecore()


class StandInSide:
    """The edgecore stand-in (kubeedge-twin-sim) in the mode named after that release."""

    def __init__(self, broker_url: str, directory: Path, current: bool, client_id: str) -> None:
        self.name = "stand-in 1.23" if current else "stand-in 1.4"
        self.dmi_directory = directory
        self._broker_url = broker_url
        self._current = current
        self._client_id = client_id
        self.store = TwinStore()
        self.standin = self._make()

    def _make(self) -> EdgecoreStandIn:
        return EdgecoreStandIn(
            self._broker_url,
            self.store,
            layout=Layout.V1_17 if self._current else Layout.V1_4,
            node=NODE,
            client_id=self._client_id,
            dmi_socket=str(self.dmi_directory / "dmi.sock") if self._current else None,
        )

    async def apply(self, documents: Iterable[Mapping[str, Any]]) -> None:
        self.standin.add_devices(definitions(list(documents)))

    async def set_desired(self, device_id: str, values: Mapping[str, str]) -> None:
        self.standin.set_desired(device_id, values)

    def reported(self, device_id: str) -> dict[str, str]:
        device = self.standin.engine.device(device_id)
        if device is None:
            return {}
        return {n: t.actual.value for n, t in device.twins.items() if t.actual and t.actual.value}

    def device_status(self, device_id: str) -> dict[str, Any] | None:
        return self.standin.dmi.device_status(device_id) if self.standin.dmi else None

    async def stop_edgecore(self) -> None:
        await asyncio.to_thread(self.standin.stop)

    async def start_edgecore(self) -> None:
        """A new stand-in on the same store (1.4 only: the DMI cache is not kept)."""
        self.standin = self._make()
        await asyncio.to_thread(self.standin.start)


@contextlib.asynccontextmanager
async def kubeedge(
    which: str, current: bool, broker_url: str, directory: Path, unique: str
) -> AsyncIterator[Side]:
    """``which`` ("standin" or "real") playing KubeEdge 1.15+ (``current``) or 1.4."""
    if which == "real":
        version = CURRENT if current else LEGACY
        async with EdgeNode(
            edgecore_binary(version), version, directory, node=NODE, broker=broker_url
        ) as node:
            try:
                yield RealSide(node)
            except BaseException:
                if node.edgecore is not None:  # what edgecore did, in the failure's report
                    print(node.edgecore.log_tail(20000))
                raise
        return
    side = StandInSide(broker_url, directory, current, f"standin-{unique}")
    await asyncio.to_thread(side.standin.start)
    try:
        yield side
    finally:
        await asyncio.to_thread(side.standin.stop)
        side.store.close()


def documents(api: str, *names: str, **desired: str) -> list[dict]:
    docs = load_documents([DEPLOY / api / name for name in names])
    for doc in docs:
        if doc["kind"] != "Device":
            continue
        for prop in doc["spec"].get("properties") or []:  # v1beta1
            if prop["name"] in desired:
                prop.setdefault("desired", {})["value"] = desired[prop["name"]]
        for twin in (doc.get("status") or {}).get("twins") or []:  # v1alpha2
            if twin["propertyName"] in desired:
                twin.setdefault("desired", {})["value"] = desired[twin["propertyName"]]
    return docs


def runtime_documents(api: str, **desired: str) -> list[dict]:
    return documents(
        api, "inference-service-model.yaml", "inference-service-device.yaml", **desired
    )


@contextlib.asynccontextmanager
async def running(mapper: DmiMapper) -> AsyncIterator[DmiMapper]:
    task = asyncio.create_task(mapper.run())
    try:
        yield mapper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def runtime_mapper(side: Side, directory: Path) -> DmiMapper:
    return DmiMapper(
        name="edgeinfer-mapper",
        protocol="edgeinfer",
        socket=str(directory / "m.sock"),
        edgecore_socket=str(side.dmi_directory),
        resync_s=0.5,
    )


async def desired_until(twin: DmiTwin | TwinClient, key: str, value: str) -> None:
    async with asyncio.timeout(30):
        async for desired in twin.desired():
            if desired.get(key) == value:
                return


async def reported_until(side: Side, device_id: str, timeout_s: float = 30, **values: str) -> None:
    await until(
        lambda: all(side.reported(device_id).get(k) == v for k, v in values.items()), timeout_s
    )


@contextlib.asynccontextmanager
async def mqtt_twin(broker_url: str, name: str, client_id: str) -> AsyncIterator[TwinClient]:
    """A TwinClient (KubeEdge 1.4 layout) on its own transport, messages routed to it."""
    transport: MqttTransport | None = None

    def publish(topic: str, payload: bytes) -> asyncio.Future[None]:
        assert transport is not None
        return transport.publish_nowait(topic, payload)

    client = TwinClient(DeviceRef(name), topics=TwinTopics(Layout.V1_4), publish=publish)
    transport = MqttTransport(
        broker_url,
        client_id=client_id,
        clean_start=True,
        session_expiry_s=0,
        subscriptions=client.subscriptions,
    )

    async def route() -> None:
        async for message in transport.messages():
            client.handle(message.topic, message.payload)

    async with transport, asyncio.TaskGroup() as tasks:
        await transport.wait_connected(10)
        router = tasks.create_task(route())
        try:
            yield client
        finally:
            router.cancel()
