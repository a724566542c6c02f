"""Turn decoded faces into the model's input: gray, resized, normalised float32."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import numpy as np
import numpy.typing as npt

from edge_runtime.errors import MissingDependency
from edge_runtime.messages import FacePixels, InputSpec, PixelArray
from edgeinfer.normalization import Normalization

_cv2: ModuleType | None = None


def opencv() -> ModuleType:
    """OpenCV, imported on first use (faces that already fit never need it)."""
    # Imported lazily: faces that already match the advertised input never need it.
    global _cv2
    if _cv2 is None:
        try:
            import cv2
        except ImportError as exc:
            raise MissingDependency(
                "resizing faces needs OpenCV: install kubeedge-edge-service[edge]"
            ) from exc
        _cv2 = cv2
    return _cv2


def normalise(pixels: PixelArray, normalization: Normalization) -> npt.NDArray[np.float32]:
    """Map 0..255 intensities as the model's input spec says."""
    # In place on one copy: a batch's temporaries are past malloc's mmap threshold, and three
    # fresh ones cost 5x the arithmetic (16 faces of 64x64: 143 against 30 us, same bits).
    x = pixels.astype(np.float32)
    if normalization == Normalization.SYMMETRIC:
        x /= np.float32(255.0)
        x -= np.float32(0.5)
        x *= np.float32(2.0)
    elif normalization == Normalization.UNIT:
        x /= np.float32(255.0)
    return x


def _fit(face: FacePixels, spec: InputSpec) -> PixelArray:
    array = face.pixels
    height, width, channels = array.shape
    if channels == spec.channels and (height, width) == (spec.height, spec.width):
        return array
    cv2 = opencv()
    work = array
    if channels == 3 and spec.channels == 1:
        work = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    elif channels == 1 and spec.channels == 3:
        work = cv2.cvtColor(work, cv2.COLOR_GRAY2RGB)
    if (height, width) != (spec.height, spec.width):
        shrinking = height > spec.height or width > spec.width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        work = cv2.resize(work, (spec.width, spec.height), interpolation=interpolation)
    fitted: PixelArray = work.reshape(spec.height, spec.width, spec.channels)
    return fitted


def prepare_batch(faces: Sequence[FacePixels], spec: InputSpec) -> npt.NDArray[np.float32]:
    """Stack ``faces`` into an (N, H, W, C) float32 batch ready for the model."""
    stacked = np.stack([_fit(face, spec) for face in faces])
    return normalise(stacked, spec.normalization)
