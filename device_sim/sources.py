"""Where a camera's frames come from: rendered faces, image folders, video files, sample photos.

Rendered frames know their face box and emotion; photos and video frames go through the
Haar detector like a phone's camera feed would, and carry a label only when an image sits in
a folder named after an emotion (``happy/``, ``sad/``, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from device_sim.preprocessing import Box, FaceDetector, to_gray
from edgeinfer.faces import EMOTIONS, FaceRenderer

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
SYNTHETIC = "synthetic"
SAMPLES = "samples"


class SourceError(ValueError):
    """A face source that cannot be opened (missing path, no images, unreadable video)."""


@dataclass(frozen=True, slots=True)
class Shot:
    """One gray frame and the faces in it, each with its emotion index if known."""

    gray: npt.NDArray[np.uint8]
    faces: tuple[tuple[Box, int | None], ...]
    margin: float  # crop margin around each box (rendered boxes already include the head)


class FaceSource(Protocol):
    """An endless stream of frames."""

    def next_shot(self) -> Shot:
        """The next frame (sources loop when they run out)."""
        ...


class RenderedSource:
    """Synthetic faces from the renderer: box and label known exactly."""

    def __init__(self, seed: int) -> None:
        self._renderer = FaceRenderer(seed)

    def next_shot(self) -> Shot:
        """Render one labelled face."""
        face = self._renderer.render()
        return Shot(face.frame, ((face.box, face.label),), 0.0)


def _label_of(path: Path) -> int | None:
    name = path.parent.name.lower()
    return EMOTIONS.index(name) if name in EMOTIONS else None


Frame = tuple[int | None, npt.NDArray[np.uint8], int | None]  # (still image index, gray, label)


class _DetectedSource:
    """Frames from an iterator, faces found by the Haar detector.

    Detection on a still image is done once: a photo shown again has the same faces, and
    detecting a large photo on every frame would stall the fleet's event loop.
    """

    def __init__(self, frames: Iterator[Frame]) -> None:
        self._frames = frames
        self._detector = FaceDetector()
        self._found: dict[int, list[Box]] = {}

    def next_shot(self) -> Shot:
        still, gray, label = next(self._frames)
        if still is None:
            boxes = self._detector.detect(gray)
        elif still in self._found:
            boxes = self._found[still]
        else:
            boxes = self._found[still] = self._detector.detect(gray)
        return Shot(gray, tuple((box, label) for box in boxes), 0.1)


class ImageFolderSource(_DetectedSource):
    """Every image under a folder (recursively), in a loop, starting at an offset."""

    def __init__(self, folder: Path, offset: int = 0) -> None:
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SourceError(f"no images under {folder}")
        images: list[Frame] = []
        for path in paths:
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise SourceError(f"cannot read image {path}")
            images.append((len(images), np.asarray(gray, np.uint8), _label_of(path)))
        start = offset % len(images)
        super().__init__(itertools.cycle(images[start:] + images[:start]))


class SampleSource(_DetectedSource):
    """Real photos shipped by scikit-image (nothing is downloaded)."""

    def __init__(self) -> None:
        from skimage import data  # shipped images; imported only when asked for

        astronaut = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
        super().__init__(itertools.cycle([(0, to_gray(astronaut), None)]))


def _video_frames(path: Path) -> Iterator[Frame]:
    while True:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise SourceError(f"cannot open video {path}")
        frames = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                frames += 1
                yield None, np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), np.uint8), None
        finally:
            capture.release()
        if frames == 0:
            raise SourceError(f"no frames in video {path}")


class VideoSource(_DetectedSource):
    """Frames of a video file (OpenCV), looped."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceError(f"no video file {path}")
        super().__init__(_video_frames(path))


def open_source(spec: str, seed: int) -> FaceSource:
    """A source from its spec: ``synthetic``, ``samples``, ``folder:PATH`` or ``video:PATH``.

    Raises:
        SourceError: for an unknown spec or a source that cannot be opened.
    """
    kind, _, argument = spec.partition(":")
    if kind == SYNTHETIC:
        return RenderedSource(seed)
    if kind == SAMPLES:
        return SampleSource()
    if kind == "folder" and argument:
        folder = Path(argument)
        if not folder.is_dir():
            raise SourceError(f"no image folder {folder}")
        return ImageFolderSource(folder, offset=seed)
    if kind == "video" and argument:
        return VideoSource(Path(argument))
    raise SourceError(f"unknown face source {spec!r}: synthetic, samples, folder:PATH, video:PATH")
