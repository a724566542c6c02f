"""The fleet's cameras as KubeEdge Devices (what ``deploy/kubeedge/*/camera-device.yaml`` holds)."""

from __future__ import annotations

from typing import Any

from device_sim.scenario import Scenario
from edgeinfer.twins import CAMERA_TWIN_TYPES, CAPTURE_FPS, ENABLED, LAST_EMOTION
from kubeedge_twin import DeviceDefinition
from kubeedge_twin.crd import device_manifest

CAMERA_MODEL = "emotion-camera"
CAMERA_PROTOCOL = "emotion-camera"
DATA_PROPERTIES = (LAST_EMOTION,)  # also streamed on $ke/events/device/<id>/data/update


def camera_definition(
    name: str, node: str, fps: float, namespace: str = "default"
) -> DeviceDefinition:
    """A camera device: desired capture_fps and enabled, the other twins reported only."""
    desired = {twin: ("", kind) for twin, kind in CAMERA_TWIN_TYPES.items()}
    desired[CAPTURE_FPS] = (f"{fps:g}", CAMERA_TWIN_TYPES[CAPTURE_FPS])
    desired[ENABLED] = ("true", CAMERA_TWIN_TYPES[ENABLED])
    return DeviceDefinition(name, namespace, node, "EmotionCamera", desired)


def camera_devices(scenario: Scenario, api_version: str, node: str) -> list[dict[str, Any]]:
    """Device resources for every camera of ``scenario``."""
    return [
        device_manifest(
            camera_definition(config.name, node, config.fps),
            api_version,
            CAMERA_MODEL,
            CAMERA_PROTOCOL,
            DATA_PROPERTIES,
        )
        for config, _ in scenario.cameras()
    ]
