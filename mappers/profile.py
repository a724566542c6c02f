"""Which devices a mapper serves: KubeEdge 1.4's device profile JSON or Device YAML.

edgecore's node ConfigMap ``device-profile-config-<node>`` (key ``deviceProfile.json``, SPEC §3.2)
lists ``deviceInstances[]{id, name, model, twins[], dataProperties[]}``; current releases have
no such ConfigMap, so the mapper reads the Device resources (YAML) instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeedge_twin import DeviceRef
from kubeedge_twin.crd import definitions


class ProfileError(ValueError):
    """A device profile or Device YAML that cannot be read."""


@dataclass(frozen=True, slots=True)
class MappedDevice:
    """A device this mapper serves: its twins (name → KubeEdge type) and data properties."""

    ref: DeviceRef
    model: str
    twins: Mapping[str, str]
    data_properties: tuple[str, ...] = ()


def _twin_type(twin: Mapping[str, Any]) -> str:
    for side in ("desired", "reported"):
        kind = ((twin.get(side) or {}).get("metadata") or {}).get("type")
        if kind:
            return str(kind)
    return "string"


def from_profile(profile: Mapping[str, Any], model: str | None = None) -> list[MappedDevice]:
    """Devices of a parsed ``deviceProfile.json`` (optionally only those of ``model``)."""
    devices = []
    for instance in profile.get("deviceInstances") or []:
        if model is not None and instance.get("model") != model:
            continue
        twins = {str(t["propertyName"]): _twin_type(t) for t in instance.get("twins") or []}
        data = tuple(str(d["propertyName"]) for d in instance.get("dataProperties") or [])
        name = str(instance.get("name") or instance["id"])
        devices.append(MappedDevice(DeviceRef(name), str(instance.get("model", "")), twins, data))
    return devices


def _model_of(document: Mapping[str, Any]) -> str:
    return str(((document.get("spec") or {}).get("deviceModelRef") or {}).get("name", ""))


def _data_properties(document: Mapping[str, Any]) -> tuple[str, ...]:
    data = (document.get("spec") or {}).get("data") or {}  # v1alpha2
    return tuple(str(d["propertyName"]) for d in data.get("dataProperties") or [])


def from_documents(
    documents: Iterable[Mapping[str, Any]], model: str | None = None
) -> list[MappedDevice]:
    """Devices of parsed Device YAML documents (v1alpha2 or v1beta1)."""
    devices = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == "Device"]
    if model is not None:
        devices = [d for d in devices if _model_of(d) == model]
    mapped = []
    for document in devices:
        found = definitions([document])
        if not found:
            continue  # a Device of an API version we do not know
        definition = found[0]
        twins = {name: kind for name, (_, kind) in definition.desired.items()}
        mapped.append(
            MappedDevice(
                DeviceRef(definition.name, definition.namespace),
                _model_of(document),
                twins,
                _data_properties(document),
            )
        )
    return mapped


def load_devices(paths: Iterable[Path], model: str | None = None) -> list[MappedDevice]:
    """Devices from ``*.json`` device profiles and ``*.yaml`` Device files.

    Raises:
        ProfileError: if a file cannot be read or parsed.
    """
    devices: list[MappedDevice] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                devices += from_profile(json.loads(text), model)
            else:
                devices += from_documents(yaml.safe_load_all(text), model)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise ProfileError(f"cannot read devices from {path}: {exc}") from exc
    return devices


def mapped_from_dmi(device: Any) -> MappedDevice:
    """A Device as edgecore 1.15+ hands it over DMI (``v1beta1.Device``; no data properties)."""
    twins = {
        str(prop.name): str(prop.desired.metadata.get("type") or "string")
        for prop in device.spec.properties
    }
    return MappedDevice(
        DeviceRef(str(device.name), str(device.namespace or "default")),
        str(device.spec.deviceModelReference),
        twins,
    )
