"""Labelled face data sets: FER2013 CSV, image folders, and the simulator's synthetic faces.

Every source yields the same :class:`DataSet`: uint8 images ``(N, side, side, 1)`` and int64
labels in FER2013 order, split into ``train``, ``val`` and ``test``, plus a fingerprint of
the exact data. Nothing is downloaded: FER2013 must already be on disk.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from cloud_trainer.registry import FER_LABELS

SPLITS = ("train", "val", "test")
# FER2013's Usage column and common folder names, mapped to our split names.
_SPLIT_ALIASES = {
    "training": "train",
    "train": "train",
    "publictest": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "privatetest": "test",
    "test": "test",
}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm")

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.int64]


class DataError(Exception):
    """A data source is missing, malformed or empty."""


@dataclass(frozen=True, slots=True)
class Split:
    """Images and labels of one split."""

    images: Images
    labels: Labels

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, classes: int) -> list[int]:
        """How many examples each class has."""
        return [int(c) for c in np.bincount(self.labels, minlength=classes)]


@dataclass(frozen=True, slots=True)
class DataSet:
    """A labelled data set in the model's input size."""

    name: str
    splits: dict[str, Split]
    labels: tuple[str, ...]
    fingerprint: str

    def split(self, name: str) -> Split:
        """One split by name.

        Raises:
            DataError: if the data set has no such split.
        """
        try:
            return self.splits[name]
        except KeyError:
            raise DataError(f"{self.name} has no {name} split") from None

    def held_out(self) -> Split:
        """The split evaluations use: ``test`` when present, else ``val``."""
        return self.splits.get("test") or self.split("val")


def fingerprint(name: str, splits: dict[str, Split]) -> str:
    """A sha256 naming a data set's content (its name, and every split's images and labels)."""
    digest = hashlib.sha256(name.encode())
    for split_name in sorted(splits):
        digest.update(split_name.encode())
        digest.update(splits[split_name].images.tobytes())
        digest.update(splits[split_name].labels.tobytes())
    return digest.hexdigest()


def _resize(image: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    if image.shape[:2] == (side, side):
        return image
    interpolation = cv2.INTER_AREA if image.shape[0] > side else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (side, side), interpolation=interpolation), dtype=np.uint8)


def _stack(images: Sequence[Images], labels: Sequence[int]) -> Split:
    return Split(
        np.stack(images)[..., None].astype(np.uint8)
        if images
        else np.empty((0, 0, 0, 1), np.uint8),
        np.asarray(labels, dtype=np.int64),
    )


def _carve_val(splits: dict[str, Split], fraction: float, seed: int) -> None:
    """Take a validation split out of ``train`` when the source has none."""
    if "val" in splits or "train" not in splits:
        return
    train = splits["train"]
    order = np.random.default_rng(seed).permutation(len(train))
    cut = max(1, int(len(train) * fraction))
    splits["val"] = Split(train.images[order[:cut]], train.labels[order[:cut]])
    splits["train"] = Split(train.images[order[cut:]], train.labels[order[cut:]])


def load_fer2013_csv(path: Path, *, side: int = 64, limit: int | None = None) -> DataSet:
    """Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``; 48x48 gray), resized to ``side``.

    Raises:
        DataError: on a missing column, a bad pixel row or an unknown label.
    """
    images: dict[str, list[Images]] = {}
    labels: dict[str, list[int]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if limit is not None and line - 2 >= limit:
                break
            usage = _SPLIT_ALIASES.get((row.get("Usage") or "Training").strip().lower())
            if usage is None:
                raise DataError(f"{path}:{line}: unknown Usage {row.get('Usage')!r}")
            label = int(row["emotion"])
            if not 0 <= label < len(FER_LABELS):
                raise DataError(f"{path}:{line}: emotion {label} out of range")
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            edge = round(len(pixels) ** 0.5)
            if edge * edge != len(pixels):
                raise DataError(f"{path}:{line}: {len(pixels)} pixels is not a square image")
            images.setdefault(usage, []).append(_resize(pixels.reshape(edge, edge), side))
            labels.setdefault(usage, []).append(label)
    if not labels:
        raise DataError(f"{path}: no rows")
    splits = {name: _stack(images[name], labels[name]) for name in labels}
    _carve_val(splits, 0.1, 0)
    return DataSet(f"fer2013-csv:{path.name}", splits, FER_LABELS, fingerprint(path.name, splits))


def _label_index(folder: str) -> int | None:
    name = folder.lower()
    if name.isdigit() and int(name) < len(FER_LABELS):
        return int(name)
    return FER_LABELS.index(name) if name in FER_LABELS else None


def _image_files(directory: Path) -> Iterator[Path]:
    yield from sorted(p for p in directory.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def load_image_folder(root: Path, *, side: int = 64) -> DataSet:
    """Images laid out as ``<root>/<split>/<label>/*.png|jpg`` (label: name or FER index).

    Raises:
        DataError: on an unknown label folder, an unreadable image or no images at all.
    """
    splits: dict[str, Split] = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = _SPLIT_ALIASES.get(split_dir.name.lower())
        if split is None:
            raise DataError(f"{split_dir}: not a split folder (use train/val/test)")
        images: list[Images] = []
        labels: list[int] = []
        for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            label = _label_index(label_dir.name)
            if label is None:
                raise DataError(f"{label_dir}: not one of {', '.join(FER_LABELS)}")
            for file in _image_files(label_dir):
                image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
                if image is None:
                    raise DataError(f"{file}: not a readable image")
                images.append(_resize(np.asarray(image, np.uint8), side))
                labels.append(label)
        if labels:
            splits[split] = _stack(images, labels)
    if not splits:
        raise DataError(f"{root}: no images under <split>/<label>/")
    _carve_val(splits, 0.1, 0)
    return DataSet(f"folder:{root.name}", splits, FER_LABELS, fingerprint(root.name, splits))


def synthetic(count: int, *, seed: int = 7, side: int = 64) -> DataSet:
    """The simulator's rendered faces: ``count`` for train, a quarter each for val and test."""
    from edgeinfer.faces import FaceRenderer

    held_out = max(count // 4, 2 * len(FER_LABELS))
    splits = {
        "train": Split(*FaceRenderer(seed).dataset(count, side=side)),
        "val": Split(*FaceRenderer(seed + 10_000).dataset(held_out, side=side)),
        "test": Split(*FaceRenderer(seed + 20_000).dataset(held_out, side=side)),
    }
    name = f"synthetic:{count}:{seed}"
    return DataSet(name, splits, FER_LABELS, fingerprint(name, splits))


def load(spec: str, *, side: int = 64, seed: int = 7) -> DataSet:
    """A data set from a command-line spec.

    ``synthetic[:COUNT]``, a FER2013 ``*.csv`` file, or an image-folder directory.

    Raises:
        DataError: if the spec names nothing usable.
    """
    if spec == "synthetic" or spec.startswith("synthetic:"):
        _, _, count = spec.partition(":")
        if count and not count.isdigit():
            raise DataError(f"{spec}: COUNT in synthetic:COUNT must be a whole number")
        return synthetic(int(count or 2800), seed=seed, side=side)
    path = Path(spec)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_fer2013_csv(path, side=side)
    if path.is_dir():
        return load_image_folder(path, side=side)
    raise DataError(f"{spec}: not synthetic[:N], a FER2013 .csv file or an image folder")


def normalise(images: Images) -> npt.NDArray[np.float32]:
    """uint8 faces to the model's [-1, 1] input."""
    scaled: npt.NDArray[np.float32] = (images.astype(np.float32) / 255.0 - 0.5) * 2.0
    return scaled


__all__ = [
    "SPLITS",
    "DataError",
    "DataSet",
    "Split",
    "fingerprint",
    "load",
    "load_fer2013_csv",
    "load_image_folder",
    "normalise",
    "synthetic",
]
