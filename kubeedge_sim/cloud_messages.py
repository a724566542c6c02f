"""What cloudcore's device controller sends to an edge node, built as cloudcore builds it.

Messages are beehive ``model.Message`` JSON (``vendor/github.com/kubeedge/beehive/pkg/core/model/
message.go``): ``header`` (``msg_id``, ``parent_msg_id``, ``timestamp``, ``resourceversion``),
``route`` (``source``, ``group``, ``operation``, ``resource``) and ``content`` as a JSON object,
never a base64 string (viaduct's websocket lane is ``WriteJSON``). Resources are as the edge sees
them, after cloudhub's ``TrimMessage`` removed ``node/<node>/``.

- KubeEdge 1.15+ (v1.23.1's ``cloud/pkg/devicecontroller/controller/downstream.go``):
  ``deviceAdded`` sends a twin-group ``membership`` update (id, name; no twin values), then the
  DeviceModel (``<ns>/devicemodel/<name>``, insert) unless another Device of that node uses it,
  then the Device (``<ns>/device/<name>``, insert). ``deviceUpdated`` sends the DeviceModel and
  the Device as ``update`` only when ``spec`` changed; desired values live in
  ``spec.properties[].desired.value``.
- KubeEdge 1.4 (v1.4.0's ``downstream.go``): ``deviceAdded`` sends only the membership update, its
  Device carrying the twins (``createDevice``: ``expected`` with ``expected_version = {cloud:
  resourceVersion, edge: 0}``, ``optional`` false, ``metadata.type``); ``deviceUpdated`` sends every
  twin on ``device/<name>/twin/cloud_updated`` when ``status`` changed (``addUpdatedTwins``).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping
from typing import Any

SOURCE = "devicecontroller"
GROUP_TWIN = "twin"
GROUP_RESOURCE = "resource"
OK = "OK"  # pkg/common: MessageSuccessfulContent


def now_ms() -> int:
    """Milliseconds since the epoch, as ``time.Now().UnixNano() / 1e6``."""
    return time.time_ns() // 1_000_000


def message(
    group: str,
    resource: str,
    operation: str,
    content: Any,
    *,
    resource_version: str = "",
    parent_id: str = "",
) -> dict[str, Any]:
    """One beehive message, as ``model.NewMessage(parent).BuildRouter(...)`` makes it."""
    header: dict[str, Any] = {"msg_id": str(uuid.uuid4()), "timestamp": now_ms()}
    if parent_id:
        header["parent_msg_id"] = parent_id
    if resource_version:
        header["resourceversion"] = resource_version
    return {
        "header": header,
        "route": {"source": SOURCE, "group": group, "operation": operation, "resource": resource},
        "content": content,
    }


def response(to: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream controller's confirmation of an edge report (``upstream.go``: "OK")."""
    return message(GROUP_TWIN, "twin", "response", OK, parent_id=to["header"]["msg_id"])


def device_id(device: Mapping[str, Any], current: bool) -> str:
    """``<ns>/<name>`` on 1.15+ (``util.GetResourceID``), the bare name on 1.4."""
    meta = device["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}" if current else str(meta["name"])


def membership_added(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """``types.MembershipUpdate`` with ``added_devices`` (and ``removed_devices`` null)."""
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": now_ms(),
        "added_devices": devices,
        "removed_devices": None,
    }


def membership_removed(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """``types.MembershipUpdate`` with ``removed_devices``."""
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": now_ms(),
        "added_devices": None,
        "removed_devices": devices,
    }


def edge_device_current(device: Mapping[str, Any]) -> dict[str, Any]:
    """1.15+ ``createDevice``: id, name and the ``description`` label, no twins."""
    edge: dict[str, Any] = {"id": device_id(device, True), "name": device["metadata"]["name"]}
    description = (device["metadata"].get("labels") or {}).get("description")
    if description:
        edge["description"] = description
    return edge


def twins_1_4(device: Mapping[str, Any]) -> dict[str, Any]:
    """1.4 ``createDevice``/``addUpdatedTwins``: every ``status.twins[]`` as an expected value."""
    version = int(device["metadata"]["resourceVersion"])
    twins: dict[str, Any] = {}
    for twin in (device.get("status") or {}).get("twins") or []:
        desired = twin.get("desired") or {}
        twins[twin["propertyName"]] = {
            "expected": {
                "value": str(desired.get("value", "")),
                "metadata": {"timestamp": now_ms()},
            },
            "optional": False,
            "metadata": {"type": (desired.get("metadata") or {}).get("type", "string")},
            "expected_version": {"cloud": version, "edge": 0},
        }
    return twins


def edge_device_1_4(device: Mapping[str, Any]) -> dict[str, Any]:
    """1.4 ``createDevice``: id and name are the Device's name, with its twins."""
    edge: dict[str, Any] = {"id": device["metadata"]["name"], "name": device["metadata"]["name"]}
    description = (device["metadata"].get("labels") or {}).get("description")
    if description:
        edge["description"] = description
    twins = twins_1_4(device)
    if twins:
        edge["twin"] = twins
    return edge


def cloud_updated_1_4(device: Mapping[str, Any]) -> dict[str, Any]:
    """1.4 ``deviceUpdated``: ``types.DeviceTwinUpdate`` with every twin."""
    return {"event_id": str(uuid.uuid4()), "timestamp": now_ms(), "twin": twins_1_4(device)}


def resource_object(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The object as ``FillBody`` sends it: apiVersion and kind set (``SetGroupVersionKind``)."""
    body = copy.deepcopy(dict(obj))
    body["apiVersion"] = "devices.kubeedge.io/v1beta1"
    body["kind"] = kind
    return body


def set_desired_current(device: dict[str, Any], values: Mapping[str, str]) -> bool:
    """Write desired values into ``spec.properties[].desired.value``; True if the spec changed."""
    changed = False
    for prop in device.setdefault("spec", {}).setdefault("properties", []) or []:
        if prop.get("name") in values:
            desired = prop.setdefault("desired", {})
            value = str(values[prop["name"]])
            if desired.get("value") != value:
                desired["value"] = value
                changed = True
    return changed


def set_desired_1_4(device: dict[str, Any], values: Mapping[str, str]) -> bool:
    """Write desired values into ``status.twins[].desired.value``; True if the status changed."""
    changed = False
    twins = device.setdefault("status", {}).setdefault("twins", [])
    known = {twin["propertyName"]: twin for twin in twins}
    for name, value in values.items():
        twin = known.get(name)
        if twin is None:
            twin = {"propertyName": name, "desired": {"metadata": {"type": "string"}}}
            twins.append(twin)
        if twin.setdefault("desired", {}).get("value") != str(value):
            twin["desired"]["value"] = str(value)
            changed = True
    return changed
