"""ed25519 signatures over a version's ``manifest.json`` (what the runtime verifies).

The signature lives beside the manifest as ``manifest.sig`` (hex), so signing a version
never changes its manifest or files.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud_trainer.registry import MANIFEST_NAME

SIGNATURE_NAME = "manifest.sig"
PRIVATE_KEY_NAME = "model-signing.key"
PUBLIC_KEY_NAME = "model-signing.pub"


class SigningError(Exception):
    """A key is unusable or a signature does not verify."""


def keygen(directory: Path) -> tuple[Path, Path]:
    """Write a new ed25519 key pair (PEM; the private key readable by the owner only).

    Raises:
        SigningError: if a key already exists there (keys are never overwritten).
    """
    private_path = directory / PRIVATE_KEY_NAME
    public_path = directory / PUBLIC_KEY_NAME
    if private_path.exists() or public_path.exists():
        raise SigningError(f"a signing key already exists in {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def _private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an ed25519 private key")
    return key


def sign(version_dir: Path, key_file: Path) -> str:
    """Sign ``version_dir``'s manifest; write ``manifest.sig``; return the hex signature."""
    signature = _private_key(key_file).sign((version_dir / MANIFEST_NAME).read_bytes()).hex()
    (version_dir / SIGNATURE_NAME).write_text(signature + "\n", encoding="utf-8")
    return signature


def signature_of(version_dir: Path) -> str:
    """The version's hex signature, or ``""`` if it is unsigned."""
    path = version_dir / SIGNATURE_NAME
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def verify(version_dir: Path, public_key_file: Path) -> None:
    """Check ``manifest.sig`` against the manifest with a public key.

    Raises:
        SigningError: if the version is unsigned, the key is not ed25519, or it does not verify.
    """
    signature = signature_of(version_dir)
    if not signature:
        raise SigningError(f"{version_dir} is not signed")
    key = serialization.load_pem_public_key(public_key_file.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{public_key_file} is not an ed25519 public key")
    try:
        key.verify(bytes.fromhex(signature), (version_dir / MANIFEST_NAME).read_bytes())
    except (InvalidSignature, ValueError) as exc:
        raise SigningError(f"{version_dir}: signature does not match the manifest") from exc


__all__ = [
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "SIGNATURE_NAME",
    "SigningError",
    "keygen",
    "sign",
    "signature_of",
    "verify",
]
