"""The cloud half of KubeEdge on loopback: a CloudHub that a real edgecore connects to.

Cloudcore cannot run here (it needs a Kubernetes API server), so this plays the part of it an
edge node sees, and nothing more:

- **cloudhub**'s websocket server (``cloud/pkg/cloudhub/servers/server.go``: viaduct, TLS 1.2+
  with ``RequireAndVerifyClientCert``, any path). Edgehub dials
  ``wss://<server>/<project>/<node>/events`` with ``node_id``/``project_id`` headers
  (``edge/pkg/edgehub/clients/wsclient/websocket.go``); every frame is one JSON
  ``model.Message`` (``pkg/viaduct/pkg/lane/wsnopack.go``).
- **its node queue** (``cloud/pkg/cloudhub/session/node_session.go``): messages for a node wait
  while it is offline and are sent when it connects; resource messages (Device, DeviceModel)
  go one at a time, each sent again every 5 s until edgecore's metamanager answers with a
  ``response`` (after 4 retries back in the queue: ``SendAckMessage``), twin-group messages
  are sent once (``SendNoAckMessage``).
- **the device controller** (``kubeedge_sim.cloud_messages`` says which messages, from which
  source file): Devices bound to this node, desired changes, deletions; and its upstream half
  (``upstream.go``): ``twin/edge_updated`` reports stored as the Device's status and answered
  "OK", ``membership/detail`` ignored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from kubeedge_sim import cloud_messages as cm
from kubeedge_sim.certs import Certificates

_LOGGER = logging.getLogger(__name__)
# cloud/pkg/cloudhub/session/node_session.go: a message that needs an ack is sent again every
# 5 s (sendRetryInterval) until edgecore acks it; after 4 retries it goes back in the queue.
SEND_RETRY_S = 5.0
SEND_RETRIES = 4


@dataclass
class Report:
    """A Device's status as cloudcore's upstream controller keeps it (``DeviceStatus.twins``)."""

    reported: dict[str, str] = field(default_factory=dict)
    observed_desired: dict[str, str] = field(default_factory=dict)
    # name -> (reported metadata, observedDesired metadata): {"timestamp", "type"}
    metadata: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)


def _property(value: str, metadata: Mapping[str, str]) -> dict[str, Any]:
    """A ``TwinProperty`` as Go marshals it (``metadata`` omitted when empty)."""
    return {"value": value, "metadata": dict(metadata)} if metadata else {"value": value}


class CloudHub:
    """Serves one edge node; ``current`` plays KubeEdge 1.15+ (v1.23.1), else KubeEdge 1.4.

    Args:
        certs: The run's certificates (server side).
        node: The node the Devices are bound to (edgecore's ``hostnameOverride``).
        current: True for KubeEdge 1.15+ (Devices as DMI resources), False for 1.4.
        port: Listening port on 127.0.0.1 (0: any free one).
    """

    def __init__(self, certs: Certificates, node: str, *, current: bool, port: int = 0) -> None:
        self.node = node
        self.current = current
        self._certs = certs
        self._port = port
        self._runner: web.AppRunner | None = None
        self._socket: web.WebSocketResponse | None = None
        self._outbox: list[dict[str, Any]] = []  # waiting for a connection
        self._unacked: dict[str, dict[str, Any]] = {}  # resource messages by msg_id
        self._ack_order: collections.deque[str] = collections.deque()  # their ids, to send
        self._ack_wake = asyncio.Event()
        self._acks: dict[str, asyncio.Event] = {}  # the one in flight
        self._sender: asyncio.Task[None] | None = None
        self._devices: dict[str, dict[str, Any]] = {}  # by device id
        self._models: dict[str, dict[str, Any]] = {}  # by <ns>/<name>
        self._version = cm.now_ms()  # resourceVersions, growing as the API server's
        self.reports: dict[str, Report] = {}
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.connected = asyncio.Event()
        self.changed = asyncio.Condition()

    @property
    def port(self) -> int:
        """The port the hub listens on (after ``start``)."""
        return self._port

    async def start(self) -> None:
        """Listen on 127.0.0.1 with mutual TLS."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self._certs.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(self._certs.server_cert), str(self._certs.server_key))
        app = web.Application()
        app.router.add_get("/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, ssl_context=context)
        await site.start()
        server = site._server  # aiohttp exposes the bound port nowhere else
        if server is None:
            raise RuntimeError("the CloudHub did not start listening")
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._sender = asyncio.get_running_loop().create_task(self._send_acked())

    async def stop(self) -> None:
        """Close the edge's connection and stop listening."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the cloud's API: what kubectl apply / edit / delete would make cloudcore send ---

    def advance_version(self, at_least: int) -> None:
        """Make the next resourceVersion larger than ``at_least``.

        An API server's versions only grow; the simulated cloud's MQTT input carries one.
        """
        self._version = max(self._version, at_least)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def apply_model(self, model: Mapping[str, Any]) -> None:
        """A DeviceModel exists in the cloud (sent with its first Device, as cloudcore does)."""
        meta = model["metadata"]
        stored = copy.deepcopy(dict(model))
        stored["metadata"].setdefault("namespace", "default")
        stored["metadata"]["resourceVersion"] = self._next_version()
        self._models[f"{stored['metadata']['namespace']}/{meta['name']}"] = stored

    async def apply_device(self, device: Mapping[str, Any]) -> None:
        """Create a Device bound to this node, or update it (``deviceAdded``/``deviceUpdated``)."""
        stored = copy.deepcopy(dict(device))
        meta = stored["metadata"]
        meta.setdefault("namespace", "default")
        meta["resourceVersion"] = self._next_version()
        self._bind(stored)
        key = cm.device_id(stored, self.current)
        previous = self._devices.get(key)
        self._devices[key] = stored
        if previous is None:
            await self._device_added(stored)
        elif self.current and previous.get("spec") != stored.get("spec"):
            await self._send_model(stored, "update")
            await self._send_device(stored, "update")
        elif not self.current and previous.get("status") != stored.get("status"):
            await self._send_twin_update(stored)

    async def set_desired(self, device_id: str, values: Mapping[str, str]) -> None:
        """Edit desired values as ``kubectl edit device`` would, and send what cloudcore sends.

        Raises:
            KeyError: if no such Device is bound to this node.
        """
        device = copy.deepcopy(self._devices[device_id])
        if self.current:
            cm.set_desired_current(device, values)
        else:
            cm.set_desired_1_4(device, values)
        await self.apply_device(device)

    async def delete_device(self, device_id: str) -> None:
        """``deviceDeleted``: membership removal, then (1.15+) the Device as ``delete``."""
        device = self._devices.pop(device_id)
        edge = cm.edge_device_current(device) if self.current else cm.edge_device_1_4(device)
        await self._send(
            cm.message(cm.GROUP_TWIN, "membership", "update", cm.membership_removed([edge]))
        )
        if self.current:
            if not self._model_in_use(device):
                await self._send_model(device, "delete")
            await self._send_device(device, "delete")

    @property
    def pending(self) -> int:
        """Resource messages not yet acknowledged by edgecore (queued or in flight)."""
        return len(self._unacked)

    def device(self, device_id: str) -> dict[str, Any]:
        """The cloud's copy of a Device (spec and, on 1.4, status)."""
        return copy.deepcopy(self._devices[device_id])

    def desired(self, device_id: str) -> dict[str, str]:
        """A Device's desired values, as the cloud holds them."""
        device = self._devices[device_id]
        if self.current:
            props = (device.get("spec") or {}).get("properties") or []
            return {p["name"]: str((p.get("desired") or {}).get("value", "")) for p in props}
        twins = (device.get("status") or {}).get("twins") or []
        return {t["propertyName"]: str((t.get("desired") or {}).get("value", "")) for t in twins}

    # --- what cloudcore sends ---

    def _bind(self, device: dict[str, Any]) -> None:
        spec = device.setdefault("spec", {})
        if self.current:
            spec["nodeName"] = self.node
        else:
            spec["nodeSelector"] = {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "", "operator": "In", "values": [self.node]}]}
                ]
            }

    def _model_in_use(self, device: Mapping[str, Any]) -> bool:
        """``isExistModel``: another Device of this node and namespace uses the same model."""
        ref = ((device.get("spec") or {}).get("deviceModelRef") or {}).get("name")
        namespace = device["metadata"]["namespace"]
        return any(
            other is not device
            and other["metadata"]["namespace"] == namespace
            and ((other.get("spec") or {}).get("deviceModelRef") or {}).get("name") == ref
            for other in self._devices.values()
        )

    async def _device_added(self, device: dict[str, Any]) -> None:
        edge = cm.edge_device_current(device) if self.current else cm.edge_device_1_4(device)
        await self._send(
            cm.message(cm.GROUP_TWIN, "membership", "update", cm.membership_added([edge]))
        )
        if not self.current:
            return
        if not self._model_in_use(device):
            await self._send_model(device, "insert")
        await self._send_device(device, "insert")

    async def _send_model(self, device: Mapping[str, Any], operation: str) -> None:
        ref = ((device.get("spec") or {}).get("deviceModelRef") or {}).get("name")
        model = self._models.get(f"{device['metadata']['namespace']}/{ref}")
        if model is None:  # sendDeviceModelMsg retries 10 s, then gives up with a warning
            _LOGGER.warning("no DeviceModel %s for Device %s", ref, device["metadata"]["name"])
            return
        meta = model["metadata"]
        await self._send(
            cm.message(
                cm.GROUP_RESOURCE,
                f"{meta['namespace']}/devicemodel/{meta['name']}",
                operation,
                cm.resource_object(model, "DeviceModel"),
                resource_version=meta["resourceVersion"],
            )
        )

    async def _send_device(self, device: Mapping[str, Any], operation: str) -> None:
        meta = device["metadata"]
        await self._send(
            cm.message(
                cm.GROUP_RESOURCE,
                f"{meta['namespace']}/device/{meta['name']}",
                operation,
                cm.resource_object(device, "Device"),
                resource_version=meta["resourceVersion"],
            )
        )

    async def _send_twin_update(self, device: Mapping[str, Any]) -> None:
        await self._send(
            cm.message(
                cm.GROUP_TWIN,
                f"device/{device['metadata']['name']}/twin/cloud_updated",
                "update",
                cm.cloud_updated_1_4(device),
            )
        )

    async def _send(self, msg: dict[str, Any]) -> None:
        if msg["route"]["group"] == cm.GROUP_RESOURCE:
            self._unacked[msg["header"]["msg_id"]] = msg
            self._ack_order.append(msg["header"]["msg_id"])
            self._ack_wake.set()
            return
        if self._socket is None or self._socket.closed:
            self._outbox.append(msg)
            return
        await self._socket.send_str(json.dumps(msg))

    async def _send_acked(self) -> None:
        """``SendAckMessage``: one message needing an ack at a time, sent until edgecore acks."""
        while True:
            while not self._ack_order:
                self._ack_wake.clear()
                await self._ack_wake.wait()
            msg_id = self._ack_order.popleft()
            msg = self._unacked.get(msg_id)
            if msg is None:
                continue
            acked = self._acks[msg_id] = asyncio.Event()
            try:
                for _ in range(1 + SEND_RETRIES):
                    await self.connected.wait()
                    socket = self._socket
                    if socket is not None and not socket.closed:
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await socket.send_str(json.dumps(msg))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(SEND_RETRY_S):
                            await acked.wait()
                        break
                else:
                    self._ack_order.append(msg_id)  # AddRateLimited: its turn comes again
            finally:
                self._acks.pop(msg_id, None)

    # --- the edge's connection ---

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        node = request.headers.get("node_id", "")
        if node != self.node:
            _LOGGER.warning("refusing node %r (serving %r)", node, self.node)
            await socket.close()
            return socket
        if self._socket is not None and not self._socket.closed:
            await self._socket.close()  # cloudhub keeps one session per node
        self._socket = socket
        self.connections += 1
        _LOGGER.info("edge node %s connected (%d)", node, self.connections)
        pending, self._outbox = self._outbox, []  # messages needing an ack: _send_acked
        for msg in pending:
            await socket.send_str(json.dumps(msg))
        self.connected.set()
        try:
            async for frame in socket:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._received(json.loads(frame.data))
        finally:
            if self._socket is socket:
                self.connected.clear()
            _LOGGER.info("edge node %s disconnected", node)
        return socket

    async def _received(self, msg: dict[str, Any]) -> None:
        self.received.append(msg)
        route = msg.get("route") or {}
        operation, resource = route.get("operation", ""), route.get("resource", "")
        if operation == "response":
            parent = (msg.get("header") or {}).get("parent_msg_id", "")
            self._unacked.pop(parent, None)
            if parent in self._acks:
                self._acks[parent].set()
        elif resource.endswith("/twin/edge_updated") and resource.startswith("device/"):
            self._store_report(
                resource.removeprefix("device/").removesuffix("/twin/edge_updated"), msg
            )
            if self._socket is not None:
                await self._socket.send_str(json.dumps(cm.response(msg)))
        async with self.changed:
            self.changed.notify_all()

    def _store_report(self, device_id: str, msg: Mapping[str, Any]) -> None:
        """``upstream.go``: actual → reported, expected → observedDesired, per twin."""
        content = msg.get("content")
        if isinstance(content, str):
            with contextlib.suppress(ValueError):
                content = json.loads(content)
        twins = (content or {}).get("twin") or {} if isinstance(content, dict) else {}
        report = self.reports.setdefault(device_id, Report())
        for name, twin in twins.items():
            twin = twin or {}
            kind = str((twin.get("metadata") or {}).get("type", ""))
            reported_meta, desired_meta = report.metadata.setdefault(name, ({}, {}))
            for side, values, meta in (
                ("actual", report.reported, reported_meta),
                ("expected", report.observed_desired, desired_meta),
            ):
                value = (twin.get(side) or {}).get("value")
                if value is None:
                    continue
                values[name] = str(value)
                meta.clear()
                timestamp = ((twin.get(side) or {}).get("metadata") or {}).get("timestamp")
                if timestamp is not None:
                    meta["timestamp"] = str(int(timestamp))
                if kind:
                    meta["type"] = kind

    def device_status(self, device_id: str) -> dict[str, Any] | None:
        """The ``DeviceStatus`` object cloudcore 1.15+ patches from the reports.

        As ``upstream.go`` builds it: ``findOrCreateTwinByName`` keeps only the twins the
        Device's spec names; values with their timestamp and type metadata.
        """
        device = self._devices.get(device_id)
        if device is None or not self.current:
            return None
        report = self.reports.get(device_id) or Report()
        twins = []
        for prop in (device.get("spec") or {}).get("properties") or []:
            name = prop["name"]
            if name not in report.reported and name not in report.observed_desired:
                continue
            reported_meta, desired_meta = report.metadata.get(name, ({}, {}))
            # Go's omitempty leaves struct fields in: both always appear (device_status_types.go)
            twin: dict[str, Any] = {
                "propertyName": name,
                "reported": _property(report.reported.get(name, ""), reported_meta),
                "observedDesired": _property(report.observed_desired.get(name, ""), desired_meta),
            }
            twins.append(twin)
        meta = device["metadata"]
        return {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceStatus",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {},
            "status": {"twins": twins},
        }

    async def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> None:
        """Wait until ``predicate()`` holds, re-checked after every message from the edge."""
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(predicate)
