"""Push a registered version to edge runtimes by setting their desired twins."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from cloud_trainer.registry import MANIFEST_NAME, read_manifest


def desired_twins(
    registry: Path, name: str, version: str, store_url: str, signature: str = ""
) -> dict[str, str]:
    """The desired ``model_*`` twin values for ``version`` served from ``store_url``.

    Raises:
        FileNotFoundError: if the version is not registered.
    """
    path = registry / name / version / MANIFEST_NAME
    manifest = read_manifest(path)
    if manifest.version != version:
        raise ValueError(f"{path} says version {manifest.version}")
    values = {
        "model_version": version,
        "model_uri": f"{store_url.rstrip('/')}/{name}/{version}/{MANIFEST_NAME}",
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    if signature:
        values["model_signature"] = signature
    return values


def describe(values: Mapping[str, str]) -> str:
    """One line for logs."""
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()))
