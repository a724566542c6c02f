"""Device definitions from KubeEdge Device YAML (v1alpha2 for 1.4, v1beta1 for current)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kubeedge_twin.engine import DeviceDefinition


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
