"""What a desired model may not do: each case is refused with a reason, before anything loads.

Unsigned when a signature is required, tampered, oversize, not a model, URIs outside http(s)
and file, a model_sha256 or file path reaching outside the cache, Keras code (Lambda layers).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edge_runtime.errors import ModelRejected
from edge_runtime.manifest import MANIFEST_NAME, parse_manifest
from edge_runtime.model_store import ModelCache, download
from edge_runtime.model_sync import verify_signature


@pytest.fixture
def version_dir(registry: Path, tmp_path: Path) -> Path:
    target = tmp_path / "emotion" / "1.0.0"
    shutil.copytree(registry / "emotion" / "1.0.0", target)
    return target


def _download(version_dir: Path, cache: Path, *, sha: str | None = None, **overrides):
    manifest = version_dir / MANIFEST_NAME
    arguments = {
        "uri": manifest.as_uri(),
        "manifest_sha256": sha or hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "version": "1.0.0",
        "variant": "float32",
        "max_bytes": 64 << 20,
        "timeout_s": 5.0,
    }
    arguments.update(overrides)
    return download(ModelCache(cache), **arguments)


def test_the_untouched_version_downloads(version_dir: Path, tmp_path: Path) -> None:
    manifest, _ = _download(version_dir, tmp_path / "cache")
    assert manifest.ref.version == "1.0.0"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("ftp://example.org/manifest.json", "unsupported URI scheme ftp"),
        ("gopher://example.org/manifest.json", "unsupported URI scheme gopher"),
        ("data:application/json,{}", "unsupported URI scheme data"),
        ("/etc/passwd", "unsupported URI scheme none"),
    ],
)
def test_uris_outside_http_and_file_are_refused(version_dir, tmp_path, uri, reason) -> None:
    with pytest.raises(ModelRejected, match=reason):
        _download(version_dir, tmp_path / "cache", uri=uri)


@pytest.mark.parametrize(
    "sha", ["../../etc", "..", "/var/x", "A" * 64, "0" * 63, "g" * 64, "0" * 64 + "/.."]
)
def test_a_model_sha256_that_is_not_one_never_reaches_the_file_system(
    version_dir, tmp_path, sha
) -> None:
    outside = tmp_path / "etc"
    outside.mkdir()
    with pytest.raises(ModelRejected, match="not a lowercase hex sha256"):
        _download(version_dir, tmp_path / "cache" / "a" / "b", sha=sha)
    assert not (tmp_path / "cache").exists()


def test_a_tampered_model_file_is_refused(version_dir, tmp_path) -> None:
    (version_dir / "model.tflite").write_bytes(b"\0" * 1000)
    with pytest.raises(ModelRejected, match="sha256 mismatch"):
        _download(version_dir, tmp_path / "cache")


def test_a_tampered_manifest_is_refused(version_dir, tmp_path) -> None:
    sha = hashlib.sha256((version_dir / MANIFEST_NAME).read_bytes()).hexdigest()
    document = json.loads((version_dir / MANIFEST_NAME).read_text())
    document["labels"][0] = "furious"
    (version_dir / MANIFEST_NAME).write_text(json.dumps(document))
    with pytest.raises(ModelRejected, match="manifest sha256 mismatch"):
        _download(version_dir, tmp_path / "cache", sha=sha)


def test_an_oversize_model_is_refused_while_downloading(version_dir, tmp_path) -> None:
    with pytest.raises(ModelRejected, match="download exceeds 1000 bytes"):
        _download(version_dir, tmp_path / "cache", max_bytes=1000)


@pytest.mark.parametrize("path", ["../outside.tflite", "/etc/passwd", "a/../../b.tflite"])
def test_a_file_path_escaping_the_version_directory_is_refused(path, tmp_path) -> None:
    document = {
        "name": "emotion",
        "version": "6.6.6",
        "input": {"height": 64, "width": 64, "channels": 1},
        "labels": ["a", "b"],
        "files": [{"path": path, "sha256": "0" * 64, "format": "tflite", "variant": "float32"}],
    }
    with pytest.raises(ModelRejected, match="escapes the version directory"):
        parse_manifest(json.dumps(document).encode(), tmp_path)


def test_a_file_that_is_not_a_model_is_refused(version_dir, tmp_path) -> None:
    from edge_runtime.backends import load_verified
    from edge_runtime.settings import ModelSettings

    garbage = b"this is not a flatbuffer" * 40
    (version_dir / "model.tflite").write_bytes(garbage)
    document = json.loads((version_dir / MANIFEST_NAME).read_text())
    for entry in document["files"]:
        if entry["path"] == "model.tflite":
            entry["sha256"] = hashlib.sha256(garbage).hexdigest()
            entry["size_bytes"] = len(garbage)
    (version_dir / MANIFEST_NAME).write_text(json.dumps(document))
    manifest, _ = _download(version_dir, tmp_path / "cache")
    with pytest.raises(ModelRejected, match="TFLite cannot load"):
        load_verified(manifest, ModelSettings(), 4)


def test_an_unsigned_manifest_is_refused_when_a_key_is_configured(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "trusted.pem"
    pem.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ModelRejected, match="signature required but missing"):
        verify_signature(b"{}", "", str(pem), "1.1.0")
    with pytest.raises(ModelRejected, match="signature invalid"):
        verify_signature(b"{}", "zz-not-hex", str(pem), "1.1.0")


@pytest.mark.slow
def test_a_keras_file_with_code_in_it_is_refused(version_dir, tmp_path) -> None:
    """A Lambda layer would run its Python code when loaded: the TF backend loads in safe mode."""
    import keras

    from edge_runtime.backends.tf import TfModel
    from edge_runtime.manifest import read_manifest

    inputs = keras.Input((64, 64, 1))
    outputs = keras.layers.Lambda(lambda x: x * 0.0)(keras.layers.Flatten()(inputs))
    path = tmp_path / "model.keras"
    keras.Model(inputs, keras.layers.Dense(7)(outputs)).save(path)
    manifest = read_manifest(version_dir / MANIFEST_NAME)
    with pytest.raises(ModelRejected, match="TensorFlow cannot load it"):
        TfModel(path, manifest=manifest, max_batch=4)
