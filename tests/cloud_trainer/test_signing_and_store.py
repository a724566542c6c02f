"""Manifest signatures (with the runtime's verifier), file checks, and the HTTP model store."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cloud_trainer.registry import (
    MANIFEST_NAME,
    ArtefactFile,
    RegistryError,
    register,
    verify_files,
    versions,
)
from cloud_trainer.signing import SigningError, keygen, sign, signature_of, verify
from cloud_trainer.store import ModelStore
from edge_runtime.errors import ModelRejected
from edge_runtime.model_sync import verify_signature


@pytest.fixture
def version_dir(registry: Path, tmp_path: Path) -> Path:
    target = tmp_path / "registry" / "emotion" / "1.0.0"
    shutil.copytree(registry / "emotion" / "1.0.0", target)
    return target


def test_signed_manifest_verifies_in_trainer_and_runtime_and_tampering_is_caught(
    version_dir: Path, tmp_path: Path
):
    private, public = keygen(tmp_path / "keys")
    assert private.stat().st_mode & 0o077 == 0
    signature = sign(version_dir, private)
    assert signature_of(version_dir) == signature
    verify(version_dir, public)
    manifest = (version_dir / MANIFEST_NAME).read_bytes()
    verify_signature(manifest, signature, str(public), "1.0.0")

    tampered = manifest.replace(b'"version": "1.0.0"', b'"version": "1.0.1"')
    assert tampered != manifest
    with pytest.raises(ModelRejected, match="signature invalid"):
        verify_signature(tampered, signature, str(public), "1.0.1")
    (version_dir / MANIFEST_NAME).write_bytes(tampered)
    with pytest.raises(SigningError, match="does not match"):
        verify(version_dir, public)

    _, other_public = keygen(tmp_path / "other-keys")
    (version_dir / MANIFEST_NAME).write_bytes(manifest)
    with pytest.raises(SigningError):
        verify(version_dir, other_public)
    with pytest.raises(SigningError, match="already exists"):
        keygen(tmp_path / "keys")


def test_file_checks_catch_a_changed_model_file(version_dir: Path):
    assert verify_files(version_dir) == []
    (version_dir / "model.tflite").write_bytes(b"tampered")
    assert verify_files(version_dir) == ["model.tflite: size or sha256 differs from the manifest"]


def test_versions_are_immutable_and_sorted_numerically(tmp_path: Path, version_dir: Path):
    root = tmp_path / "r"
    source = ArtefactFile(version_dir / "model.tflite", "model.tflite", "tflite", "float32")
    for version in ("1.9.0", "1.10.0", "1.2.0"):
        register(root, name="m", version=version, files=[source], height=64, width=64)
    assert versions(root, "m") == ["1.2.0", "1.9.0", "1.10.0"]
    with pytest.raises(RegistryError, match="already registered"):
        register(root, name="m", version="1.9.0", files=[source], height=64, width=64)


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_store_serves_byte_exact_files_and_safe_ranges(version_dir: Path):
    root = version_dir.parents[1]
    (root / "emotion" / ".2.0.0.staging").mkdir()
    (root / "emotion" / ".2.0.0.staging" / "model.tflite").write_bytes(b"half-written")
    store = ModelStore(root)
    store.start()
    try:
        data = (version_dir / "model.tflite").read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        url = f"{store.url}/emotion/1.0.0/model.tflite"

        status, headers, body = _get(url)
        assert (status, body) == (200, data)
        assert headers["Content-Length"] == str(len(data))
        assert headers["ETag"] == etag
        assert headers["Accept-Ranges"] == "bytes"

        status, headers, body = _get(url, Range="bytes=100-199")
        assert (status, body) == (206, data[100:200])
        assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        status, _, body = _get(url, Range="bytes=-10")
        assert (status, body) == (206, data[-10:])
        status, _, body = _get(url, Range=f"bytes={len(data) - 5}-")
        assert (status, body) == (206, data[-5:])
        # Resuming against another version of the file must restart, not stitch.
        status, _, body = _get(url, Range="bytes=100-", **{"If-Range": '"other"'})
        assert (status, body) == (200, data)
        status, _, body = _get(url, Range="bytes=100-", **{"If-Range": etag})
        assert (status, body) == (206, data[100:])
        status, headers, _ = _get(url, Range=f"bytes={len(data)}-")
        assert status == 416
        assert headers["Content-Range"] == f"bytes */{len(data)}"
        status, _, body = _get(url, Range="bytes=0-1,5-6")  # multi-range: whole file
        assert (status, body) == (200, data)

        assert _get(f"{store.url}/emotion/.2.0.0.staging/model.tflite")[0] == 404
        assert _get(f"{store.url}/emotion/1.0.0/../../../etc/passwd")[0] == 404
        assert (
            _get(store.manifest_uri("emotion", "1.0.0"))[2]
            == (version_dir / MANIFEST_NAME).read_bytes()
        )
    finally:
        store.stop()
