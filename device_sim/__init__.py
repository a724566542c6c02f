"""Simulated device fleet: cameras that preprocess faces, load the edge runtime and measure it."""

from device_sim.camera import Camera, CameraConfig, Mode
from device_sim.fleet import run_cameras, run_scenario
from device_sim.preprocessing import FaceDetector, crop_face
from device_sim.scenario import Scenario, ScenarioError, load_scenario
from device_sim.sources import FaceSource, SourceError, open_source
from device_sim.stats import FleetStats
from edgeinfer.faces import EMOTIONS, FaceRenderer, RenderedFace

__all__ = [
    "EMOTIONS",
    "Camera",
    "CameraConfig",
    "FaceDetector",
    "FaceRenderer",
    "FaceSource",
    "FleetStats",
    "Mode",
    "RenderedFace",
    "Scenario",
    "ScenarioError",
    "SourceError",
    "crop_face",
    "load_scenario",
    "open_source",
    "run_cameras",
    "run_scenario",
]
