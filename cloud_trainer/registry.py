"""The versioned model registry: ``<root>/<name>/<version>/`` with files and a manifest.

Versions are immutable: registering an existing version is refused.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format

from edgeinfer.v1 import inference_pb2, model_pb2

MANIFEST_NAME = "manifest.json"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class RegistryError(Exception):
    """A registry operation was refused."""


@dataclass(frozen=True, slots=True)
class ArtefactFile:
    """A file to register with a version."""

    source: Path
    name: str
    format: str
    variant: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    # Percentiles of each hard-example score on the calibration set (cloud_trainer.calibration).
    offload_scores: Mapping[str, Sequence[float]] = field(default_factory=dict)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def register(
    root: Path,
    *,
    name: str,
    version: str,
    files: Sequence[ArtefactFile],
    height: int,
    width: int,
    channels: int = 1,
    normalization: inference_pb2.Normalization = inference_pb2.NORMALIZATION_SYMMETRIC,
    labels: Sequence[str] = FER_LABELS,
    metrics: Mapping[str, float] | None = None,
    parent_version: str = "",
    dataset_fingerprint: str = "",
    description: str = "",
    calibration_set: str = "",
) -> Path:
    """Copy ``files`` into a new version directory and write its manifest.

    Returns:
        The path of the written ``manifest.json``.

    Raises:
        RegistryError: if the version already exists.
    """
    directory = root / name / version
    if directory.exists():
        raise RegistryError(f"{name} {version} already registered at {directory}")
    staging = root / name / f".{version}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    manifest = model_pb2.ModelManifest(
        name=name,
        version=version,
        input=inference_pb2.InputSpec(
            height=height,
            width=width,
            channels=channels,
            dtype=inference_pb2.DATA_TYPE_UINT8,
            normalization=normalization,
        ),
        labels=list(labels),
        metrics=dict(metrics or {}),
        parent_version=parent_version,
        dataset_fingerprint=dataset_fingerprint,
        description=description,
        calibration_set=calibration_set,
    )
    manifest.created_at.FromDatetime(datetime.now(UTC))
    for artefact in files:
        data = artefact.source.read_bytes()
        target = staging / artefact.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        manifest.files.add(
            path=artefact.name,
            sha256=sha256_bytes(data),
            size_bytes=len(data),
            format=artefact.format,
            variant=artefact.variant,
            metrics=dict(artefact.metrics),
        )
        for policy, at_percent in artefact.offload_scores.items():
            manifest.files[-1].offload_scores[policy].at_percent.extend(at_percent)
    text = json_format.MessageToJson(manifest, preserving_proto_field_name=True, indent=2)
    (staging / MANIFEST_NAME).write_text(text + "\n", encoding="utf-8")
    staging.rename(directory)  # atomic: a half-written version is never visible
    return directory / MANIFEST_NAME


def read_manifest(path: Path) -> model_pb2.ModelManifest:
    """Parse a registry manifest."""
    message = model_pb2.ModelManifest()
    json_format.Parse(path.read_text(encoding="utf-8"), message)
    return message


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_]", version))


def versions(root: Path, name: str) -> list[str]:
    """Registered versions of ``name``, oldest first (numeric-aware: 1.10.0 after 1.9.0)."""
    found = [p.parent.name for p in (root / name).glob(f"*/{MANIFEST_NAME}")]
    return sorted(found, key=_version_key)


def verify_files(directory: Path) -> list[str]:
    """Problems with a version's files against its manifest (empty when all match)."""
    manifest = read_manifest(directory / MANIFEST_NAME)
    problems = []
    for entry in manifest.files:
        path = directory / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        data = path.read_bytes()
        if len(data) != entry.size_bytes or sha256_bytes(data) != entry.sha256:
            problems.append(f"{entry.path}: size or sha256 differs from the manifest")
    return problems
