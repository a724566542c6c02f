"""Domain types for bus traffic; protobuf stops at ``codec``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edgeinfer.normalization import Normalization
from edgeinfer.wire import WireFormat

__all__ = [
    "FacePixels",
    "FaceResult",
    "InputSpec",
    "ModelRef",
    "Normalization",
    "PixelArray",
    "Request",
    "Response",
    "ServiceInfo",
    "Source",
    "Status",
    "Timings",
    "WireFormat",
]


class Source(enum.IntEnum):
    """Which side of joint inference answered a face (``inference.proto`` Source)."""

    UNSPECIFIED = 0  # no joint inference: the edge
    EDGE = 1
    CLOUD = 2


class Status(enum.IntEnum):
    """Outcome of a request (values match ``edgeinfer.v1.Status``)."""

    OK = 1
    INVALID_ARGUMENT = 2
    RESOURCE_EXHAUSTED = 3
    UNAVAILABLE = 4
    DEADLINE_EXCEEDED = 5
    INTERNAL = 6


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Name and version of a model."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What one face must look like for the model (after runtime preprocessing)."""

    height: int
    width: int
    channels: int
    normalization: Normalization


PixelArray = npt.NDArray[np.uint8 | np.float32]


@dataclass(frozen=True, slots=True)
class FacePixels:
    """One decoded face, before preprocessing: an (H, W, C) uint8 or float32 array."""

    pixels: PixelArray


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded inference request."""

    request_id: str
    device_id: str
    captured_at_ms: int
    faces: tuple[FacePixels, ...]
    share_for_training: bool = False  # the device's consent to keep its hard faces


@dataclass(frozen=True, slots=True)
class SampleSource:
    """A request whose device consented to its hard faces being kept for training."""

    device_id: str
    request_id: str
    captured_at_ms: int


@dataclass(frozen=True, slots=True)
class FaceResult:
    """The answer for one face; with joint inference, also who gave it and why."""

    label: str
    class_index: int
    confidence: float
    probabilities: tuple[float, ...]
    source: Source = Source.UNSPECIFIED
    fallback: str = ""  # why the edge's answer stands for a hard face
    hard: bool = False
    model: ModelRef | None = None  # the version that answered this face


@dataclass(frozen=True, slots=True)
class Timings:
    """Runtime-side timings in microseconds."""

    queue_us: int = 0
    inference_us: int = 0
    total_us: int = 0
    batch_size: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    """The runtime's answer to one request."""

    request_id: str
    device_id: str
    status: Status
    error: str = ""
    model: ModelRef | None = None
    results: tuple[FaceResult, ...] = ()
    timings: Timings = field(default_factory=Timings)
    captured_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the runtime advertises to devices (retained)."""

    runtime_id: str
    model: ModelRef
    input: InputSpec
    labels: tuple[str, ...]
    max_batch: int
    max_faces_per_request: int
    max_payload_bytes: int
    max_face_side: int
    request_topic_filter: str
