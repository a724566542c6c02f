"""Hard examples from the edge: the intake that stores them, and what the loop reads of them.

Edge runtimes upload the hard faces of consenting devices (``edgeinfer.v1.HardExample``, one
per ``POST /v1/samples``, protobuf binary). The intake checks the bearer token, the size and the
example, and keeps one copy per face: ``<samples>/<sha256[:2]>/<sha256>.pb``, the sha256 of the
pixels (201 when new, 200 when it had it). Written whole (temporary file, then rename).
"""

from __future__ import annotations

import csv
import hmac
import logging
import os
from collections import Counter
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from edgeinfer.intake import example_name
from edgeinfer.v1 import inference_pb2, samples_pb2

_LOGGER = logging.getLogger(__name__)

MAX_SIDE: Final = 512
_SUFFIX: Final = ".pb"


class SampleError(ValueError):
    """An uploaded example that cannot be kept."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A stored hard example."""

    sha256: str
    example: samples_pb2.HardExample

    @property
    def face(self) -> npt.NDArray[np.uint8]:
        """The pixels, (height, width, channels) uint8."""
        pixels = self.example.pixels
        return np.frombuffer(pixels.data, np.uint8).reshape(tuple(pixels.shape))

    def cloud_label(self) -> tuple[str, float] | None:
        """The cloud's label and its probability (None: the cloud did not answer)."""
        row = self.example.cloud_probabilities
        if not row:
            return None
        best = max(range(len(row)), key=row.__getitem__)
        return self.example.labels[best], float(row[best])


def validate(example: samples_pb2.HardExample) -> None:
    """Check that ``example`` holds a face and answers that fit it.

    Raises:
        SampleError: saying what is wrong.
    """
    pixels = example.pixels
    if pixels.dtype != inference_pb2.DATA_TYPE_UINT8 or len(pixels.shape) != 3:
        raise SampleError("pixels must be a uint8 tensor of shape (height, width, channels)")
    height, width, channels = pixels.shape
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and channels in (1, 3)):
        raise SampleError(f"a face of {height}x{width}x{channels} is not one")
    if len(pixels.data) != height * width * channels:
        raise SampleError(f"{len(pixels.data)} pixel bytes for a {height}x{width}x{channels} face")
    if not example.labels:
        raise SampleError("no labels")
    for name in ("edge_probabilities", "cloud_probabilities"):
        row = getattr(example, name)
        if row and len(row) != len(example.labels):
            raise SampleError(f"{name} has {len(row)} values for {len(example.labels)} labels")
    if not example.edge_probabilities:
        raise SampleError("no edge_probabilities")


class SampleIntake:
    """Keeps uploaded examples in ``directory`` (thread-safe: one file per face, renamed whole).

    Args:
        directory: Where examples go.
        token: The bearer token uploads must carry ("" for none).
        max_bytes: The largest upload taken (413 beyond).
        quota_bytes: The most the directory holds (507 beyond; 0: no limit).
    """

    def __init__(
        self, directory: Path, *, token: str = "", max_bytes: int = 1 << 20, quota_bytes: int = 0
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._token = token
        self.max_bytes = max_bytes
        self._quota = quota_bytes

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the token."""
        if not self._token:
            return True
        expected = f"Bearer {self._token}".encode()
        return hmac.compare_digest((header or "").encode(), expected)

    def accept(self, body: bytes) -> tuple[HTTPStatus, str]:
        """Keep one uploaded example; the status to answer and the sha256 (or why not)."""
        example = samples_pb2.HardExample()
        try:
            example.ParseFromString(body)
            validate(example)
        except (DecodeError, SampleError) as exc:
            return HTTPStatus.BAD_REQUEST, f"not a usable HardExample: {exc}"
        digest = example_name(example)
        path = self.directory / digest[:2] / f"{digest}{_SUFFIX}"
        if path.exists():
            return HTTPStatus.OK, digest
        if self._quota and _size(self.directory) + len(body) > self._quota:
            return HTTPStatus.INSUFFICIENT_STORAGE, "the intake's quota is spent"
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_name(f".{digest}.{os.getpid()}.{id(body)}.tmp")
        temporary.write_bytes(example.SerializeToString())
        temporary.replace(path)
        _LOGGER.info("sample %s from %s kept", digest[:12], example.device_id)
        return HTTPStatus.CREATED, digest


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob(f"*/*{_SUFFIX}"))


def read_samples(directory: Path, skip: Container[str] = ()) -> Iterator[Sample]:
    """Every stored example not named in ``skip``, in name order.

    Unreadable files are left out, with a warning.
    """
    for path in sorted(directory.glob(f"*/*{_SUFFIX}")):
        if path.stem in skip:
            continue
        example = samples_pb2.HardExample()
        try:
            example.ParseFromString(path.read_bytes())
            validate(example)
        except (OSError, DecodeError, SampleError) as exc:
            _LOGGER.warning("skipping %s: %s", path, exc)
            continue
        yield Sample(path.stem, example)


def summary(samples: list[Sample], min_confidence: float) -> dict[str, Counter[str]]:
    """Counts by device, by edge version, by the cloud's confident label, by fallback."""
    counts: dict[str, Counter[str]] = {
        "device": Counter(),
        "edge_model": Counter(),
        "cloud_label": Counter(),
        "fallback": Counter(),
    }
    for sample in samples:
        example = sample.example
        counts["device"][example.device_id] += 1
        counts["edge_model"][f"{example.edge_model.name} {example.edge_model.version}"] += 1
        answer = sample.cloud_label()
        if answer is None:
            counts["cloud_label"]["(no cloud answer)"] += 1
        elif answer[1] < min_confidence:
            counts["cloud_label"][f"(below {min_confidence:g})"] += 1
        else:
            counts["cloud_label"][answer[0]] += 1
        counts["fallback"][example.fallback or "(cloud answered)"] += 1
    return counts


def read_corrections(path: Path) -> dict[str, str]:
    """A human's labels: a CSV of ``sha256,label`` rows (a header row is allowed)."""
    corrections = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) >= 2 and row[0] != "sha256" and row[0].strip():
                corrections[row[0].strip()] = row[1].strip()
    return corrections


def labelled(
    samples: list[Sample], min_confidence: float, corrections: Mapping[str, str] | None = None
) -> list[tuple[Sample, str]]:
    """The examples with a label: a human's correction first, else the cloud's confident one.

    Examples without either are left out (never the edge's own answer: it found them hard).
    """
    corrections = corrections or {}
    out = []
    for sample in samples:
        label = corrections.get(sample.sha256)
        if label is None:
            answer = sample.cloud_label()
            if answer is None or answer[1] < min_confidence:
                continue
            label = answer[0]
        if label not in sample.example.labels:
            _LOGGER.warning("%s: label %r is not one of the model's", sample.sha256[:12], label)
            continue
        out.append((sample, label))
    return out


def export_folder(pairs: list[tuple[Sample, str]], target: Path, split: str = "train") -> int:
    """Write ``target/<split>/<label>/<sha256>.png``, the image folders ``train --data`` reads.

    Returns:
        How many were written.
    """
    import cv2

    for sample, label in pairs:
        folder = target / split / label
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{sample.sha256}.png"), sample.face)
    return len(pairs)


def contact_sheet(samples: list[Sample], path: Path, *, columns: int = 10) -> None:
    """A PNG of the examples with the edge's and the cloud's label under each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(samples) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.6), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= len(samples):
            continue
        sample = samples[index]
        axis.imshow(sample.face[:, :, 0], cmap="gray", vmin=0, vmax=255)
        edge = sample.example.edge_probabilities
        edge_label = sample.example.labels[max(range(len(edge)), key=edge.__getitem__)]
        answer = sample.cloud_label()
        cloud = f"{answer[0]} {answer[1]:.2f}" if answer else sample.example.fallback
        axis.set_title(f"e:{edge_label}\nc:{cloud}", fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
