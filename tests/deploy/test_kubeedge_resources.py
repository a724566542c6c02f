"""Our DeviceModel/Device YAML validates against KubeEdge's CRD schemas for its API version."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from device_sim.__main__ import main as device_sim_main
from edgeinfer.twins import CAMERA_DESIRED, CAMERA_TWIN_TYPES, RUNTIME_TWINS
from kubeedge_twin import load_definitions
from tests.support.kubeedge import crd_schema
from tests.support.paths import REPO

RESOURCES = sorted(
    p for p in (REPO / "deploy" / "kubeedge").glob("*/*.yaml") if p.name != "kustomization.yaml"
)


@pytest.mark.parametrize("path", RESOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_resource_validates_against_its_crd(path: Path):
    for document in yaml.safe_load_all(path.read_text()):
        group, version = document["apiVersion"].split("/")
        assert group == "devices.kubeedge.io"
        assert version == path.parent.name
        jsonschema.validate(document, crd_schema(document["kind"], version))


def test_inference_device_declares_every_twin_the_runtime_uses():
    wanted = set(RUNTIME_TWINS)
    definitions = load_definitions(
        p for p in RESOURCES if p.name == "inference-service-device.yaml"
    )
    assert len(definitions) == 2
    for definition in definitions:
        assert set(definition.desired) == wanted


def _model_properties(version: str, name: str) -> dict[str, str]:
    """Property name -> access mode of one of our DeviceModels."""
    model = yaml.safe_load((REPO / "deploy" / "kubeedge" / version / name).read_text())
    modes = {}
    for prop in model["spec"]["properties"]:
        if version == "v1alpha2":
            (kind,) = prop["type"].values()
            modes[prop["name"]] = kind["accessMode"]
        else:
            modes[prop["name"]] = prop["accessMode"]
    return modes


@pytest.mark.parametrize("version", ["v1alpha2", "v1beta1"])
def test_camera_model_and_device_declare_the_camera_twins(version):
    modes = _model_properties(version, "camera-model.yaml")
    assert set(modes) == set(CAMERA_TWIN_TYPES)
    assert {n for n, mode in modes.items() if mode == "ReadWrite"} == set(CAMERA_DESIRED)
    (camera,) = load_definitions([REPO / "deploy" / "kubeedge" / version / "camera-device.yaml"])
    assert {name: kind for name, (_, kind) in camera.desired.items()} == CAMERA_TWIN_TYPES
    # only capture_fps and enabled carry a desired value; the rest are reported only
    assert {n for n, (value, _) in camera.desired.items() if value} == set(CAMERA_DESIRED)


@pytest.mark.parametrize("version", ["v1alpha2", "v1beta1"])
def test_camera_device_is_what_device_sim_emits(version, capsys):
    assert (
        device_sim_main(["--devices", "1", "--node", "demo-node", "--emit-devices", version]) == 0
    )
    emitted = yaml.safe_load(capsys.readouterr().out)
    path = REPO / "deploy" / "kubeedge" / version / "camera-device.yaml"
    assert yaml.safe_load(path.read_text()) == emitted


@pytest.mark.parametrize("version", ["v1alpha2", "v1beta1"])
def test_inference_model_declares_the_runtime_twins(version):
    modes = _model_properties(version, "inference-service-model.yaml")
    assert set(modes) == set(RUNTIME_TWINS)
