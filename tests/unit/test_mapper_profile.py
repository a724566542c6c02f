"""The mappers find their devices in KubeEdge 1.4's deviceProfile.json and in Device YAML."""

from __future__ import annotations

import json

import pytest

from edgeinfer.twins import CAMERA_TWIN_TYPES
from kubeedge_twin import DeviceRef
from mappers import ProfileError, load_devices
from tests.support.paths import REPO

# The shape of cloudcore's device-profile-config-<node> ConfigMap (SPEC §3.2).
PROFILE = {
    "deviceInstances": [
        {
            "id": "cam-7",
            "name": "cam-7",
            "protocol": "customized-protocol-cam-7",
            "model": "emotion-camera",
            "twins": [
                {
                    "propertyName": "capture_fps",
                    "desired": {"value": "5", "metadata": {"type": "float"}},
                    "reported": {"value": "2", "metadata": {"type": "float"}},
                },
                {"propertyName": "last_emotion", "desired": {"value": "", "metadata": {}}},
            ],
            "dataProperties": [{"propertyName": "last_emotion", "metadata": {}}],
        },
        {"id": "led-1", "name": "led-1", "model": "led-light", "twins": []},
    ],
    "deviceModels": [{"name": "emotion-camera", "properties": []}],
    "protocols": [],
}


def test_device_profile_json(tmp_path):
    path = tmp_path / "deviceProfile.json"
    path.write_text(json.dumps(PROFILE))
    (camera,) = load_devices([path], "emotion-camera")
    assert camera.ref == DeviceRef("cam-7")
    assert dict(camera.twins) == {"capture_fps": "float", "last_emotion": "string"}
    assert camera.data_properties == ("last_emotion",)
    assert len(load_devices([path])) == 2  # no model filter


@pytest.mark.parametrize("version", ["v1alpha2", "v1beta1"])
def test_device_yaml(version):
    files = sorted((REPO / "deploy" / "kubeedge" / version).glob("*.yaml"))
    (camera,) = load_devices(files, "emotion-camera")
    assert camera.ref == DeviceRef("cam-00")
    assert dict(camera.twins) == CAMERA_TWIN_TYPES
    assert camera.data_properties == (("last_emotion",) if version == "v1alpha2" else ())


def test_unreadable_profile_is_a_profile_error(tmp_path):
    broken = tmp_path / "deviceProfile.json"
    broken.write_text("{nope")
    with pytest.raises(ProfileError, match=r"deviceProfile\.json"):
        load_devices([broken])
    with pytest.raises(ProfileError):
        load_devices([tmp_path / "missing.yaml"])
