"""KubeEdge mappers that bridge the emotion cameras to edgecore's twin topics."""

from mappers.camera import CameraMapper
from mappers.metrics import MapperMetrics
from mappers.profile import MappedDevice, ProfileError, load_devices
from mappers.results import ResultMapper
from mappers.session import Connection, run_forever

__all__ = [
    "CameraMapper",
    "Connection",
    "MappedDevice",
    "MapperMetrics",
    "ProfileError",
    "ResultMapper",
    "load_devices",
    "run_forever",
]
