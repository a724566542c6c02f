"""What the phone app does first: find faces, crop, gray, resize to the advertised size."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_runtime import FacePixels, InputSpec

Box = tuple[int, int, int, int]


def cascade_path() -> Path:
    """OpenCV's frontal-face Haar cascade (shipped by opencv-python, else by fer)."""
    data = getattr(cv2, "data", None)
    if data is not None:
        candidate = Path(data.haarcascades) / "haarcascade_frontalface_default.xml"
        if candidate.is_file():
            return candidate
    located = importlib.metadata.distribution("fer").locate_file(
        "fer/data/haarcascade_frontalface_default.xml"
    )
    return Path(str(located))


class FaceDetector:
    """Haar-cascade face detection (OpenCV below 5 still has ``CascadeClassifier``)."""

    def __init__(self, min_size: int = 30) -> None:
        self._cascade = cv2.CascadeClassifier(str(cascade_path()))
        if self._cascade.empty():
            raise RuntimeError("could not load the Haar cascade")
        self._min_size = min_size

    def detect(self, gray: npt.NDArray[np.uint8]) -> list[Box]:
        """Boxes (x, y, w, h) of the faces in a gray frame, largest first."""
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self._min_size, self._min_size)
        )
        boxes: list[Box] = [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: -b[2] * b[3])


def to_gray(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Gray version of an RGB or gray frame."""
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), np.uint8)
    return frame.reshape(frame.shape[0], frame.shape[1])


def crop_face(
    gray: npt.NDArray[np.uint8], box: Box, spec: InputSpec, margin: float = 0.1
) -> FacePixels:
    """Crop ``box`` with a margin and resize it to the runtime's advertised input."""
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    height, width = gray.shape
    crop = gray[max(0, y - dy) : min(height, y + h + dy), max(0, x - dx) : min(width, x + w + dx)]
    resized = cv2.resize(crop, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return FacePixels(resized.reshape(spec.height, spec.width, 1).astype(np.uint8))
