"""edgecore's DeviceTwin behaviour (SPEC §2), as a pure function of stored state and a message.

Every handler returns the ``(topic, payload)`` pairs edgecore would publish, so the stand-in
service and the tests share one implementation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubeedge_sim.store import Device, Twin, TwinStore
from kubeedge_twin.crd import DeviceDefinition
from kubeedge_twin.messages import (
    Delta,
    ErrorResult,
    MsgTwin,
    TwinFormatError,
    TwinMessage,
    TwinValue,
    TwinVersion,
    check_value,
    dumps,
    loads,
    new_event_id,
    now_ms,
)
from kubeedge_twin.topics import (
    ERROR_RESULT_TOPIC,
    MEMBERSHIP_GET_RESULT,
    MEMBERSHIP_UPDATED,
    STATE_UPDATE_RESULT,
    TWIN_GET_RESULT,
    TWIN_UPDATE_DELTA,
    TWIN_UPDATE_DOCUMENT,
    TWIN_UPDATE_RESULT,
    DeviceRef,
    Layout,
    TwinTopics,
)

Outbox = list[tuple[str, bytes]]

_LOGGER = logging.getLogger(__name__)

_STATES_1_4 = {"online", "offline", "unknown"}
_STATES_NEWEST = {"online", "offline", "ok", "unknown", "unhealthy"}


def _parses(value: str, kind: str) -> bool:
    try:
        if kind == "int":
            int(value, 10)
        elif kind == "float":
            float(value)
    except ValueError:
        return False
    return kind != "boolean" or value in ("true", "false")


def _check_type(value: str, kind: str) -> None:
    # dtcommon.ValidateValue (SPEC §2.2)
    if not _parses(value, kind):
        raise TwinFormatError(f"the value is not {kind}")
    if kind not in ("string", "", "int", "float", "boolean", "deleted"):
        raise TwinFormatError("the value type is not allowed")


def _nil_metadata(twins: Mapping[str, Any], device: Device) -> str:
    """Which entry of a sync (cloud_updated) makes edgecore dereference a nil metadata, if any."""
    for name, entry in twins.items():
        if entry is None:
            if name in device.twins:
                return f"twin {name!r} is null"
        elif entry.get("metadata") is None:
            return f"twin {name!r} has no metadata"
    return ""


class TwinEngine:
    """Devices, twins and their processing, as edgecore's DeviceTwin module does it.

    Args:
        store: Where devices and twins live.
        layout: Topic layout (1.4 or >= 1.17).
        node: This edge node's name (membership topics).
    """

    def __init__(self, store: TwinStore, *, layout: Layout, node: str) -> None:
        self._store = store
        self.topics = TwinTopics(layout)
        self._layout = layout
        self._node = node
        self._lock = threading.RLock()
        # Why edgecore's twin module is down, if it is: then twin/update, twin/get and
        # cloud_updated go unanswered (see cloud_updated).
        self.twin_module_down = ""

    # helpers

    def _result_topic(self, device_id: str) -> str:
        return f"$hw/events/device/{device_id}{TWIN_UPDATE_RESULT}"

    def _topic(self, device_id: str, suffix: str) -> str:
        return f"$hw/events/device/{device_id}{suffix}"

    def _delta(self, device: Device) -> Outbox:
        twins = {
            name: t.message()
            for name, t in device.twins.items()
            if t.expected is not None and t.type != "deleted"
        }
        delta = {
            name: t.expected.value
            for name, t in device.twins.items()
            if t.expected is not None
            and t.expected.value
            and t.type != "deleted"
            and (t.actual is None or t.actual.value != t.expected.value)
        }
        if not delta:
            return []
        return [(self._topic(device.id, TWIN_UPDATE_DELTA), Delta(twins, delta).encode())]

    def _document(
        self, device: Device, event_id: str, before: Mapping[str, Twin | None], names: list[str]
    ) -> Outbox:
        if not names:
            return []
        stamp = now_ms()
        twin_docs: dict[str, Any] = {}
        for name in names:
            last = before.get(name)
            current = device.twins.get(name)
            twin_docs[name] = {
                "last": None if last is None else last.message().to_json(),
                "current": None if current is None else current.message().to_json(),
            }
        payload = dumps({"event_id": event_id, "timestamp": stamp, "twin": twin_docs})
        return [(self._topic(device.id, TWIN_UPDATE_DOCUMENT), payload)]

    # edge-originated messages

    def twin_update(self, device_id: str, payload: bytes) -> Outbox:
        """``…/twin/update`` from a mapper or app (RestDealType, SPEC §2.4)."""
        with self._lock:
            if self.twin_module_down:
                return []
            try:
                message = TwinMessage.decode(payload)
                for entry in message.twin.values():
                    for value in (entry.expected, entry.actual) if entry else ():
                        if value is not None and value.value is not None:
                            check_value(value.value)
            except TwinFormatError as exc:
                return [(ERROR_RESULT_TOPIC, ErrorResult(400, str(exc)).encode())]
            device = self._store.device(device_id)
            if device is None:
                reason = (
                    "Update rejected due to the device is not existed"
                    if self._layout is Layout.V1_4
                    else "update rejected due to the device is not existed"
                )
                return [
                    (
                        self._result_topic(device_id),
                        ErrorResult(404, reason, message.event_id).encode(),
                    )
                ]
            before = {name: t.copy() for name, t in device.twins.items()}
            changed: list[str] = []
            stamp = now_ms()
            try:
                for name, entry in message.twin.items():
                    if self._apply_edge(device, name, entry, stamp):
                        changed.append(name)
            except TwinFormatError as exc:
                return [
                    (
                        self._result_topic(device_id),
                        ErrorResult(400, str(exc), message.event_id).encode(),
                    )
                ]
            self._store.save(device)
            result = TwinMessage(
                {
                    name: device.twins[name].message() if name in device.twins else None
                    for name in changed
                },
                message.event_id,
                stamp,
            )
            out: Outbox = [(self._result_topic(device_id), result.encode())]
            out += self._document(device, message.event_id, before, changed)
            out += self._delta(device)
            return out

    def _apply_edge(self, device: Device, name: str, entry: MsgTwin | None, stamp: int) -> bool:
        twin = device.twins.get(name)
        if entry is None:
            if twin is not None and twin.optional:
                del device.twins[name]
                return True
            return False
        if twin is None:
            twin = Twin(
                optional=True if entry.optional is None else entry.optional,
                type=entry.type or "string",
            )
            twin.expected_version = TwinVersion(0, 0)
            twin.actual_version = TwinVersion(0, 0)
            device.twins[name] = twin
        elif entry.type:
            twin.type = entry.type
        for value in (entry.expected, entry.actual):
            if value is not None and value.value is not None:
                _check_type(value.value, twin.type)
        if entry.expected is not None:
            twin.expected = TwinValue(entry.expected.value, stamp)
            v = twin.expected_version
            twin.expected_version = TwinVersion(v.cloud, v.edge + 1)
        if entry.actual is not None:
            twin.actual = TwinValue(entry.actual.value, stamp)
            v = twin.actual_version
            twin.actual_version = TwinVersion(v.cloud, v.edge + 1)
        return True

    def twin_get(self, device_id: str, payload: bytes) -> Outbox:
        """``…/twin/get`` (SPEC §2.6)."""
        with self._lock:
            if self.twin_module_down:
                return []
            try:
                data = loads(payload) if payload.strip() else {}
            except TwinFormatError:
                data = {}
            event_id = str(data.get("event_id", ""))
            topic = self._topic(device_id, TWIN_GET_RESULT)
            device = self._store.device(device_id)
            if device is None:
                reason = f"Device {device_id} not found while getting twin"
                return [(topic, ErrorResult(404, reason, event_id).encode())]
            twins = {n: t.message() for n, t in device.twins.items() if t.type != "deleted"}
            return [(topic, TwinMessage(twins, event_id).encode())]

    def cloud_updated(self, device_id: str, payload: bytes) -> Outbox:
        """``…/twin/cloud_updated`` (SyncDealType with version checks, SPEC §2.3, §2.8).

        A twin entry without ``metadata``, or null for a twin the device has, makes edgecore's
        twin module panic: DealMsgTwin and dealTwinAdd read ``msgTwin.Metadata.Type``
        unchecked for SyncDealType (edge/pkg/devicetwin/dtmanager/twin.go, v1.4.0 and
        v1.23.1), before any version check, so nothing of the message is applied. The
        module's recover only logs (dtmodule.go), and twin traffic goes unanswered until the
        health check restarts the module two to four minutes later; the stand-in's stays down.
        Cloudcore always sends metadata; a test or a program publishing this topic may not.
        """
        with self._lock:
            if self.twin_module_down:
                return []
            try:
                message = TwinMessage.decode(payload)
                for entry in message.twin.values():
                    if entry is not None and entry.expected is not None:
                        check_value(entry.expected.value or "")
            except TwinFormatError as exc:
                return [(ERROR_RESULT_TOPIC, ErrorResult(400, str(exc)).encode())]
            device = self._store.device(device_id)
            if device is None:
                return []
            panic = _nil_metadata(loads(payload)["twin"], device)
            if panic:
                self.twin_module_down = f"twin/cloud_updated of {device_id}: {panic}"
                _LOGGER.error(
                    "TwinModule in twin panic with err: runtime error: invalid memory address or "
                    "nil pointer dereference (%s); twin/update, twin/get and cloud_updated go "
                    "unanswered from now on, as edgecore's until its health check restarts it",
                    self.twin_module_down,
                )
                return []
            return self._sync(device, message)

    def _sync(self, device: Device, message: TwinMessage) -> Outbox:
        before = {name: t.copy() for name, t in device.twins.items()}
        changed: list[str] = []
        stamp = now_ms()
        for name, entry in message.twin.items():
            twin = device.twins.get(name)
            if entry is None or entry.type == "deleted":
                if twin is not None:
                    del device.twins[name]
                    changed.append(name)
                continue
            if entry.expected is not None and entry.expected_version is None:
                continue  # "Version not allowed be nil while syncing"
            if twin is None:
                twin = Twin(optional=bool(entry.optional), type=entry.type or "string")
                device.twins[name] = twin
            local, remote = twin.expected_version, entry.expected_version
            if remote is not None and (local.cloud > remote.cloud or local.edge > remote.edge):
                continue  # "Version not allowed" / "Not allowed to sync due to version conflict"
            if entry.expected is not None and remote is not None:
                value = entry.expected.value
                twin.expected = TwinValue(value, stamp) if value else None
                twin.expected_version = remote
            if entry.type:
                twin.type = entry.type
            if entry.optional is not None:
                twin.optional = entry.optional
            changed.append(name)
        if not changed:
            return []  # every change was refused by the version check: nothing is published
        self._store.save(device)
        return self._document(device, message.event_id, before, changed) + self._delta(device)

    def state_update(self, device_id: str, payload: bytes) -> Outbox:
        """``…/state/update`` (SPEC §2.9); unknown states are ignored without a result."""
        with self._lock:
            try:
                data = loads(payload)
            except TwinFormatError:
                return []
            state = str(data.get("state", ""))
            if self._layout is Layout.V1_17:
                state = state.lower()
            allowed = _STATES_1_4 if self._layout is Layout.V1_4 else _STATES_NEWEST
            device = self._store.device(device_id)
            if state not in allowed or device is None:
                return []
            device.state = state
            if self._layout is Layout.V1_4:
                device.last_online = datetime.now().strftime("%Y-%m-%d %H:%M:%S")  # noqa: DTZ005 - 1.4 uses local time
                body: dict[str, Any] = {
                    "name": device.name,
                    "state": state,
                    "last_online": device.last_online,
                }
            else:
                if state in ("online", "ok"):
                    device.last_online = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                body = {"name": device.name, "state": state, "lastOnlineTime": device.last_online}
            self._store.save(device)
            payload_out = dumps({"event_id": new_event_id(), "timestamp": now_ms(), "device": body})
            return [(self._topic(device_id, STATE_UPDATE_RESULT), payload_out)]

    def membership_get(self, payload: bytes) -> Outbox:
        """``$hw/events/node/<node>/membership/get`` (SPEC §2.6)."""
        try:
            event_id = str(loads(payload).get("event_id", "")) if payload.strip() else ""
        except TwinFormatError:
            event_id = ""
        devices = [
            {
                k: v
                for k, v in {
                    "id": d.id,
                    "name": d.name,
                    "description": d.description,
                    "state": d.state,
                    "last_online": d.last_online,
                }.items()
                if v
            }
            for d in self._store.devices()
        ]
        body = dumps({"event_id": event_id, "timestamp": now_ms(), "devices": devices})
        return [(self.topics.node_topic(self._node, MEMBERSHIP_GET_RESULT), body)]

    # cloud-originated changes

    def add_device(self, definition: DeviceDefinition) -> Outbox:
        """Bind a device to this node as the cloud does (membership added, SPEC §2.8 step 4)."""
        with self._lock:
            device_id = self.topics.device_id(DeviceRef(definition.name, definition.namespace))
            existing = self._store.device(device_id)
            if existing is not None:
                return self.set_desired(
                    device_id, {k: v for k, (v, _) in definition.desired.items()}
                )
            device = Device(
                device_id,
                definition.name,
                definition.namespace,
                definition.description,
                resource_version=1,
            )
            self._store.save(device)
            twins = {
                name: MsgTwin(
                    expected=TwinValue(value, now_ms()) if value else None,
                    optional=False,
                    type=kind or "string",
                    expected_version=TwinVersion(1, 0),
                )
                for name, (value, kind) in definition.desired.items()
            }
            out = self._sync(device, TwinMessage(twins, ""))
            added = {
                "id": device_id,
                "name": definition.name,
                "description": definition.description,
                "twin": {n: t.to_json() for n, t in twins.items()},
            }
            body = dumps(
                {
                    "event_id": new_event_id(),
                    "timestamp": now_ms(),
                    "added_devices": [added],
                    "removed_devices": None,
                }
            )
            out.append((self.topics.node_topic(self._node, MEMBERSHIP_UPDATED), body))
            return out

    def set_desired(self, device_id: str, values: Mapping[str, str]) -> Outbox:
        """Change desired values the way the 1.4 cloud does (all twins, new resourceVersion).

        The 1.4 cloud's ``cloud_updated`` goes through the twin module: nothing while it is down.

        Raises:
            KeyError: if the device is unknown.
            TwinFormatError: if a value breaks KubeEdge's pattern.
        """
        with self._lock:
            if self.twin_module_down:
                return []
            device = self._store.device(device_id)
            if device is None:
                raise KeyError(device_id)
            for value in values.values():
                check_value(value)
            device.resource_version = max(device.resource_version + 1, now_ms())
            version = TwinVersion(device.resource_version, 0)
            twins: dict[str, MsgTwin | None] = {}
            for name, twin in device.twins.items():
                value = values.get(name, (twin.expected.value if twin.expected else "") or "")
                twins[name] = MsgTwin(
                    expected=TwinValue(value or "", now_ms()),
                    optional=False,
                    type=twin.type,
                    expected_version=version,
                )
            for name, value in values.items():
                if name not in twins:
                    twins[name] = MsgTwin(
                        expected=TwinValue(value, now_ms()),
                        optional=False,
                        type="string",
                        expected_version=version,
                    )
            return self._sync(device, TwinMessage(twins, new_event_id()))

    def device(self, device_id: str) -> Device | None:
        """A stored device (for the cloud side and tests)."""
        return self._store.device(device_id)
