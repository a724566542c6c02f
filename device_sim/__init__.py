"""Simulated device fleet: cameras that preprocess faces, load the edge runtime and measure it."""

from device_sim.camera import Camera, CameraConfig
from device_sim.faces import EMOTIONS, FaceRenderer, RenderedFace
from device_sim.preprocessing import FaceDetector, crop_face
from device_sim.stats import FleetStats

__all__ = [
    "EMOTIONS",
    "Camera",
    "CameraConfig",
    "FaceDetector",
    "FaceRenderer",
    "FleetStats",
    "RenderedFace",
    "crop_face",
]
