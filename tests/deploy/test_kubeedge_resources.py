"""Our DeviceModel/Device YAML validates against KubeEdge's CRD schemas for its API version."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from kubeedge_twin import load_definitions
from tests.conftest import REPO
from tests.helpers import crd_schema

RESOURCES = sorted((REPO / "deploy" / "kubeedge").glob("*/*.yaml"))


@pytest.mark.parametrize("path", RESOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_resource_validates_against_its_crd(path: Path):
    for document in yaml.safe_load_all(path.read_text()):
        group, version = document["apiVersion"].split("/")
        assert group == "devices.kubeedge.io"
        assert version == path.parent.name
        jsonschema.validate(document, crd_schema(document["kind"], version))


def test_inference_device_declares_every_twin_the_runtime_uses():
    from edgeinfer.twins import (
        MODEL_SHA256,
        MODEL_SIGNATURE,
        MODEL_STATUS,
        MODEL_URI,
        MODEL_VERSION,
    )

    wanted = {MODEL_VERSION, MODEL_URI, MODEL_SHA256, MODEL_SIGNATURE, MODEL_STATUS}
    definitions = load_definitions(p for p in RESOURCES if p.name.endswith("device.yaml"))
    assert len(definitions) == 2
    for definition in definitions:
        assert set(definition.desired) == wanted
