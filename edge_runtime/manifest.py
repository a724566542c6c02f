"""Read and verify model manifests: manifest.json, the edgeinfer.v1.ModelManifest contract."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format

from edge_runtime.errors import ModelError, ModelRejected
from edge_runtime.messages import InputSpec, ModelRef
from edgeinfer.normalization import Normalization
from edgeinfer.v1 import model_pb2

MANIFEST_NAME = "manifest.json"
AUTO_VARIANT = "auto"
# What "auto" serves, first found: the trainer registers a full-int8 file only after it passed
# the accuracy gate on the held-out split (cloud_trainer.export), and it is the fastest on CPU.
AUTO_ORDER = ("int8-full", "float32")


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file listed in a manifest."""

    path: str
    sha256: str
    size_bytes: int
    format: str
    variant: str
    # Percentiles of each hard-example score over the calibration faces (edgeinfer.hardness).
    offload_scores: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A model version as its manifest describes it, located in ``directory``."""

    ref: ModelRef
    directory: Path
    input: InputSpec
    labels: tuple[str, ...]
    files: tuple[ModelFile, ...]
    parent_version: str
    calibration_set: str = ""  # what the files' offload_scores were measured on

    def file(self, variant: str) -> ModelFile:
        """The file of ``variant``; a version with one file serves it for any variant.

        ``auto`` is the first of ``AUTO_ORDER`` the version has, else its first file.

        Raises:
            ModelRejected: if the manifest has no such variant.
        """
        if variant == AUTO_VARIANT and self.files:
            by_variant = {entry.variant: entry for entry in self.files}
            return next((by_variant[v] for v in AUTO_ORDER if v in by_variant), self.files[0])
        for entry in self.files:
            if entry.variant == variant:
                return entry
        if len(self.files) == 1:
            return self.files[0]
        known = ", ".join(f.variant for f in self.files)
        raise ModelRejected(self.ref.version, f"no {variant} file (has {known})")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_manifest(data: bytes, directory: Path) -> Manifest:
    """Parse manifest JSON located in ``directory``.

    Raises:
        ModelRejected: if the JSON is not a usable manifest.
    """
    message = model_pb2.ModelManifest()
    try:
        json_format.Parse(data.decode("utf-8"), message, ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise ModelRejected("?", f"manifest unreadable: {exc}") from exc
    version = message.version or "?"
    if not message.name or not message.version:
        raise ModelRejected(version, "manifest lacks name or version")
    spec = message.input
    if spec.height == 0 or spec.width == 0 or spec.channels == 0:
        raise ModelRejected(version, "manifest input spec incomplete")
    if not message.labels:
        raise ModelRejected(version, "manifest lists no labels")
    if not message.files:
        raise ModelRejected(version, "manifest lists no files")
    files = []
    for f in message.files:
        if not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
            raise ModelRejected(version, f"file {f.path} has no valid sha256")
        if Path(f.path).is_absolute() or ".." in Path(f.path).parts:
            raise ModelRejected(version, f"file path {f.path} escapes the version directory")
        scores = {policy: tuple(q.at_percent) for policy, q in f.offload_scores.items()}
        files.append(ModelFile(f.path, f.sha256, f.size_bytes, f.format, f.variant, scores))
    return Manifest(
        ref=ModelRef(message.name, message.version),
        directory=directory,
        input=InputSpec(
            spec.height,
            spec.width,
            spec.channels,
            Normalization.from_proto(spec.normalization),
        ),
        labels=tuple(message.labels),
        files=tuple(files),
        parent_version=message.parent_version,
        calibration_set=message.calibration_set,
    )


def read_manifest(path: Path) -> Manifest:
    """Read ``path`` (a manifest.json) into a ``Manifest``.

    Raises:
        ModelError: if the file cannot be read.
        ModelRejected: if it is not a usable manifest.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read manifest {path}: {exc}") from exc
    return parse_manifest(data, path.parent)


def verify_file(manifest: Manifest, entry: ModelFile) -> Path:
    """Check one file's size and sha256 against the manifest; return its path.

    Raises:
        ModelRejected: on a missing file or a checksum mismatch.
    """
    path = manifest.directory / entry.path
    if not path.is_file():
        raise ModelRejected(manifest.ref.version, f"file {entry.path} missing")
    if sha256_file(path) != entry.sha256:
        raise ModelRejected(manifest.ref.version, f"sha256 mismatch for {entry.path}")
    return path


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts = re.split(r"[.\-_]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def newest_version(registry: Path, name: str) -> str:
    """The highest version of ``name`` in ``registry`` (numeric-aware ordering).

    Raises:
        ModelError: if the registry holds no version of ``name``.
    """
    base = registry / name
    versions = [p.parent.name for p in base.glob(f"*/{MANIFEST_NAME}")]
    if not versions:
        raise ModelError(
            f"no version of model {name!r} in registry {registry}; run `make models` "
            "or pass --model"
        )
    return max(versions, key=_version_key)


def locate(registry: Path, name: str, version: str, path: str) -> Path:
    """Where the manifest to serve is: ``path`` if given, else the registry's version.

    Raises:
        ModelError: if nothing suitable exists.
    """
    if path:
        candidate = Path(path)
        if candidate.is_dir():
            candidate = candidate / MANIFEST_NAME
        elif candidate.name != MANIFEST_NAME:
            candidate = candidate.parent / MANIFEST_NAME
        if not candidate.is_file():
            raise ModelError(f"no {MANIFEST_NAME} for --model {path}")
        return candidate
    chosen = version or newest_version(registry, name)
    manifest = registry / name / chosen / MANIFEST_NAME
    if not manifest.is_file():
        raise ModelError(f"model {name} version {chosen} not in registry {registry}")
    return manifest
