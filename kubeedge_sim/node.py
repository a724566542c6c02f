"""One KubeEdge edge node on this machine: the real edgecore, connected to our CloudHub."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt
import yaml

from kubeedge_sim.certs import make_certificates
from kubeedge_sim.cloud import SIM_DESIRED_FILTERS, client_for, device_of
from kubeedge_sim.cloudhub import CloudHub
from kubeedge_sim.edgecore import RealEdgecore, is_current

_LOGGER = logging.getLogger(__name__)


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every YAML document of ``paths`` that is a Device or DeviceModel."""
    documents = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ("Device", "DeviceModel"):
                documents.append(doc)
    return documents


class EdgeNode:
    """Our CloudHub and a real edgecore for ``node``; an async context manager.

    Args:
        binary: The edgecore executable.
        version: The KubeEdge release it was built from (``v1.23.1``, ``v1.4.0``).
        directory: The run's directory (short: it holds Unix sockets).
        node: The edge node's name.
        broker: The node's MQTT broker (``mqtt://host:port``).
        connect_timeout_s: How long edgecore may take to reach the CloudHub.
    """

    def __init__(
        self,
        binary: str,
        version: str,
        directory: Path,
        *,
        node: str,
        broker: str,
        connect_timeout_s: float = 60.0,
    ) -> None:
        self.version = version
        self.current = is_current(version)
        self.directory = directory
        self.node = node
        self.broker = broker
        self._connect_timeout_s = connect_timeout_s
        self.certs = make_certificates(directory / "certs", node)
        self.hub = CloudHub(self.certs, node, current=self.current)
        self._binary = binary
        self.edgecore: RealEdgecore | None = None

    @property
    def dmi_directory(self) -> Path:
        """Where edgecore serves DMI (``<dir>/dmi.sock``); KubeEdge 1.15+ only."""
        return self.directory / "edgecore" / "dmi"

    async def __aenter__(self) -> EdgeNode:
        await self.hub.start()
        self.edgecore = RealEdgecore(
            self._binary,
            self.version,
            self.directory / "edgecore",
            self.certs,
            node=self.node,
            hub_port=self.hub.port,
            broker=self.broker,
        )
        try:
            await self.start_edgecore()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start_edgecore(self) -> None:
        """Start edgecore and wait until it is connected to the CloudHub.

        Raises:
            RuntimeError: with the end of edgecore's log, if it exits or does not connect.
        """
        edgecore = self._edgecore()
        connections = self.hub.connections
        await edgecore.start()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                # polled: edgecore exiting is no event of ours
                while self.hub.connections == connections or not self.hub.connected.is_set():
                    if not edgecore.running:
                        raise RuntimeError("edgecore exited")  # noqa: TRY301
                    await asyncio.sleep(0.05)
        except (TimeoutError, RuntimeError) as exc:
            tail = edgecore.log_tail()
            raise RuntimeError(f"edgecore {self.version} did not connect ({exc}): {tail}") from exc
        if self.current:  # the DMI server starts with the twin module, right after edgehub
            sock = self.dmi_directory / "dmi.sock"
            async with asyncio.timeout(self._connect_timeout_s):
                while not sock.exists():  # noqa: ASYNC110 - a file another process makes
                    await asyncio.sleep(0.05)

    async def restart_edgecore(self) -> None:
        """Stop edgecore (SIGTERM) and start it again with the same database."""
        await self._edgecore().stop()
        await self.start_edgecore()

    def _edgecore(self) -> RealEdgecore:
        if self.edgecore is None:
            raise RuntimeError("EdgeNode not entered")
        return self.edgecore

    async def close(self) -> None:
        """Stop edgecore, its CRI stub and the CloudHub."""
        if self.edgecore is not None:
            await self.edgecore.close()
        await self.hub.stop()

    async def apply(self, documents: Iterable[Mapping[str, Any]]) -> None:
        """``kubectl apply`` of Devices and DeviceModels.

        Models first: a cluster holds them before the device controller sends any Device.
        """
        docs = list(documents)
        for doc in docs:
            if doc.get("kind") == "DeviceModel":
                await self.hub.apply_model(doc)
        for doc in docs:
            if doc.get("kind") == "Device":
                await self.hub.apply_device(doc)

    async def relay_cloud_updates(self) -> None:
        """Take the simulated cloud's input from the broker until cancelled.

        ``cloud-trainer push --backend local`` and ``kubeedge-twin-sim set-desired`` publish
        desired values on ``kubeedge_sim.cloud.desired_topic``, a topic edgecore does not
        subscribe to; here they become what editing the Device does in a cluster: a Device update
        (1.15+), or a ``cloud_updated`` (1.4), over the websocket.
        """
        topic = SIM_DESIRED_FILTERS[1] if self.current else SIM_DESIRED_FILTERS[0]
        while True:
            try:
                async with client_for(self.broker) as client:
                    await client.subscribe(topic, qos=1)
                    async for message in client.messages:
                        payload = message.payload
                        if isinstance(payload, bytes | bytearray):
                            await self._cloud_update(str(message.topic), bytes(payload))
            except aiomqtt.MqttError as exc:
                _LOGGER.warning("cloud input: broker lost (%s); again in 1 s", exc)
                await asyncio.sleep(1)

    async def _cloud_update(self, topic: str, payload: bytes) -> None:
        device_id = device_of(topic) or ""
        try:
            twins = json.loads(payload).get("twin") or {}
            values = {
                name: str(twin["expected"]["value"])
                for name, twin in twins.items()
                if twin and (twin.get("expected") or {}).get("value") is not None
            }
            versions = [
                int((twin.get("expected_version") or {}).get("cloud") or 0)
                for twin in twins.values()
                if twin
            ]
            self.hub.advance_version(max(versions, default=0))
            await self.hub.set_desired(device_id, values)
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            _LOGGER.warning("cloud input for %s not applied: %s", device_id, exc)
        else:
            _LOGGER.info("cloud: %s desired %s", device_id, values)
