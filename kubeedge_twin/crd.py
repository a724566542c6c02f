"""Device definitions from KubeEdge Device YAML (v1alpha2 for 1.4, v1beta1 for current)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class DeviceDefinition:
    """A device as a Device CR defines it: identity, node and desired twins with types."""

    name: str
    namespace: str = "default"
    node: str = ""
    description: str = ""
    desired: Mapping[str, tuple[str, str]] = ()  # type: ignore[assignment] # name -> (value, type)
    protocol: str = ""  # spec.protocol.protocolName (v1beta1): which DMI mapper serves it
    config_data: Mapping[str, object] = ()  # type: ignore[assignment] # spec.protocol.configData
    model: str = ""  # spec.deviceModelRef.name


def _v1alpha2(doc: Mapping[str, Any]) -> DeviceDefinition:
    meta, spec = doc["metadata"], doc.get("spec") or {}
    node = ""
    terms = (spec.get("nodeSelector") or {}).get("nodeSelectorTerms") or [{}]
    expressions = terms[0].get("matchExpressions") or [{}]
    values = expressions[0].get("values") or [""]
    node = str(values[0])
    desired = {}
    for twin in (doc.get("status") or {}).get("twins") or []:
        want = twin.get("desired") or {}
        kind = (want.get("metadata") or {}).get("type", "string")
        desired[str(twin["propertyName"])] = (str(want.get("value", "")), str(kind))
    return DeviceDefinition(
        name=str(meta["name"]),
        namespace=str(meta.get("namespace", "default")),
        node=node,
        description=str((meta.get("labels") or {}).get("description", "")),
        desired=desired,
        model=str((spec.get("deviceModelRef") or {}).get("name", "")),
    )


def _v1beta1(doc: Mapping[str, Any]) -> DeviceDefinition:
    meta, spec = doc["metadata"], doc.get("spec") or {}
    desired = {}
    for prop in spec.get("properties") or []:
        want = prop.get("desired") or {}
        kind = (want.get("metadata") or {}).get("type", "string")
        desired[str(prop["name"])] = (str(want.get("value", "")), str(kind))
    return DeviceDefinition(
        name=str(meta["name"]),
        namespace=str(meta.get("namespace", "default")),
        node=str(spec.get("nodeName", "")),
        description=str((meta.get("labels") or {}).get("description", "")),
        desired=desired,
        protocol=str((spec.get("protocol") or {}).get("protocolName", "")),
        config_data=dict((spec.get("protocol") or {}).get("configData") or {}),
        model=str((spec.get("deviceModelRef") or {}).get("name", "")),
    )


def definitions(documents: Iterable[Mapping[str, Any]]) -> list[DeviceDefinition]:
    """The Devices among parsed YAML documents (other kinds are skipped)."""
    found = []
    for doc in documents:
        if not isinstance(doc, Mapping) or doc.get("kind") != "Device":
            continue
        api = str(doc.get("apiVersion", ""))
        if api == "devices.kubeedge.io/v1alpha2":
            found.append(_v1alpha2(doc))
        elif api == "devices.kubeedge.io/v1beta1":
            found.append(_v1beta1(doc))
    return found


def load_definitions(paths: Iterable[Path]) -> list[DeviceDefinition]:
    """Devices defined in YAML files (multi-document files allowed)."""
    documents: list[Mapping[str, Any]] = []
    for path in paths:
        documents.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return definitions(documents)


def device_manifest(
    definition: DeviceDefinition,
    api_version: str,
    model: str,
    protocol: str,
    data_properties: Iterable[str] = (),
) -> dict[str, Any]:
    """The Device resource of ``definition`` for ``v1alpha2`` (1.4) or ``v1beta1`` (current).

    Twins whose desired value is empty are reported-only: v1alpha2 lists them with an empty
    desired value (the 1.4 cloud stores reported values only for listed twins), v1beta1 as
    properties without ``desired``. ``data_properties`` (v1alpha2 ``spec.data``) are published by
    the mapper on ``$ke/events/device/<id>/data/update``.

    Raises:
        ValueError: for another API version.
    """
    metadata: dict[str, Any] = {"name": definition.name, "namespace": definition.namespace}
    if definition.description:
        metadata["labels"] = {"description": definition.description, "model": model}
    if api_version == "v1alpha2":
        twins = [
            {"propertyName": name, "desired": {"metadata": {"type": kind}, "value": value}}
            for name, (value, kind) in definition.desired.items()
        ]
        selector = {"key": "", "operator": "In", "values": [definition.node]}
        spec: dict[str, Any] = {
            "deviceModelRef": {"name": model},
            "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [selector]}]},
        }
        data = [{"propertyName": name} for name in data_properties]
        if data:
            spec["data"] = {"dataProperties": data}
        return {
            "apiVersion": "devices.kubeedge.io/v1alpha2",
            "kind": "Device",
            "metadata": metadata,
            "spec": spec,
            "status": {"twins": twins},
        }
    if api_version == "v1beta1":
        properties: list[dict[str, Any]] = []
        for name, (value, kind) in definition.desired.items():
            prop: dict[str, Any] = {"name": name}
            if value:
                prop["desired"] = {"value": value, "metadata": {"type": kind}}
            prop["reportToCloud"] = True
            properties.append(prop)
        return {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": metadata,
            "spec": {
                "deviceModelRef": {"name": model},
                "nodeName": definition.node,
                "protocol": {"protocolName": protocol},
                "properties": properties,
            },
        }
    raise ValueError(f"unknown Device API version {api_version!r}: v1alpha2 or v1beta1")
