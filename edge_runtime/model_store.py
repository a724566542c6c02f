"""Fetch model versions by URI and keep them in a content-addressed cache that survives restarts.

The cache is keyed by the sha256 of a version's ``manifest.json`` (the value of the
``model_sha256`` twin); ``last-good`` names the version to serve after a restart.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from edge_runtime.errors import ModelRejected
from edge_runtime.manifest import MANIFEST_NAME, Manifest, ModelFile, parse_manifest, sha256_file

_LOGGER = logging.getLogger(__name__)
_CHUNK = 1 << 16


def fetch(uri: str, *, max_bytes: int, timeout_s: float, version: str) -> bytes:
    """Read ``uri`` (``http(s)://`` or ``file://``) with a size limit and a timeout (blocking).

    Raises:
        ModelRejected: if the URI is unsupported, unreachable, too large or times out.
    """
    scheme = urlsplit(uri).scheme
    if scheme not in ("http", "https", "file"):
        raise ModelRejected(version, f"unsupported URI scheme {scheme or 'none'}")
    try:
        with urllib.request.urlopen(uri, timeout=timeout_s) as response:  # noqa: S310 - scheme checked
            chunks, total = [], 0
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ModelRejected(version, f"download exceeds {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelRejected(version, f"cannot fetch {uri}: {exc}") from exc


class ModelCache:
    """Versions stored under ``<root>/<manifest sha256>/``.

    Args:
        root: Cache directory (created on demand).
    """

    def __init__(self, root: Path) -> None:
        self._root = root

    def directory(self, manifest_sha256: str) -> Path:
        """Where a version lives."""
        return self._root / manifest_sha256

    def manifest(self, manifest_sha256: str) -> Manifest | None:
        """The cached manifest if present and intact."""
        path = self.directory(manifest_sha256) / MANIFEST_NAME
        if not path.is_file() or sha256_file(path) != manifest_sha256:
            return None
        return parse_manifest(path.read_bytes(), path.parent)

    def has_file(self, manifest: Manifest, entry: ModelFile) -> bool:
        """True if ``entry`` is cached with the right checksum."""
        path = manifest.directory / entry.path
        return path.is_file() and sha256_file(path) == entry.sha256

    def store(self, manifest_sha256: str, manifest_bytes: bytes) -> Manifest:
        """Write a manifest into its cache directory and parse it there."""
        directory = self.directory(manifest_sha256)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST_NAME).write_bytes(manifest_bytes)
        return parse_manifest(manifest_bytes, directory)

    def store_file(self, manifest: Manifest, entry: ModelFile, data: bytes) -> None:
        """Write one model file after checking its sha256.

        Raises:
            ModelRejected: on a checksum mismatch.
        """
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ModelRejected(manifest.ref.version, f"sha256 mismatch for {entry.path}")
        target = manifest.directory / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(target)

    def mark_good(self, manifest_sha256: str) -> None:
        """Remember the version to serve after a restart."""
        self._root.mkdir(parents=True, exist_ok=True)
        marker = self._root / "last-good"
        partial = marker.with_suffix(".part")
        partial.write_text(manifest_sha256 + "\n", encoding="utf-8")
        partial.replace(marker)

    def last_good(self) -> Manifest | None:
        """The manifest of the last version served successfully, if cached intact."""
        marker = self._root / "last-good"
        if not marker.is_file():
            return None
        try:
            return self.manifest(marker.read_text(encoding="utf-8").strip())
        except ModelRejected:
            return None

    def forget(self, manifest_sha256: str) -> None:
        """Remove a version (for example one that failed to load)."""
        shutil.rmtree(self.directory(manifest_sha256), ignore_errors=True)


def download(
    cache: ModelCache,
    *,
    uri: str,
    manifest_sha256: str,
    version: str,
    variant: str,
    max_bytes: int,
    timeout_s: float,
) -> tuple[Manifest, bytes]:
    """Make ``variant`` of the version at ``uri`` available in the cache (blocking).

    Returns:
        The cached manifest and the manifest's bytes (for signature checks).

    Raises:
        ModelRejected: on any fetch, checksum or manifest problem.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", manifest_sha256):
        # Also the cache directory's name: nothing else may reach the file system.
        raise ModelRejected(version, "model_sha256 is not a lowercase hex sha256")
    cached = cache.manifest(manifest_sha256)
    if cached is not None:
        manifest_bytes = (cached.directory / MANIFEST_NAME).read_bytes()
        manifest = cached
    else:
        manifest_bytes = fetch(uri, max_bytes=1 << 20, timeout_s=timeout_s, version=version)
        if hashlib.sha256(manifest_bytes).hexdigest() != manifest_sha256:
            raise ModelRejected(version, "manifest sha256 mismatch")
        manifest = cache.store(manifest_sha256, manifest_bytes)
    if manifest.ref.version != version:
        raise ModelRejected(version, f"manifest is version {manifest.ref.version}")
    entry = manifest.file(variant)
    if not cache.has_file(manifest, entry):
        data = fetch(
            urljoin(uri, entry.path), max_bytes=max_bytes, timeout_s=timeout_s, version=version
        )
        cache.store_file(manifest, entry, data)
    _LOGGER.info("model %s %s available in cache", manifest.ref.name, version)
    return manifest, manifest_bytes
