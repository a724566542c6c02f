"""A throw-away CA, CloudHub's server certificate and edgecore's client certificate, per run.

Edgehub verifies the server against ``tlsCaFile`` and presents ``tlsCertFile``; its CN must be
``system:node:<node>`` or edgecore tries token bootstrap against ``httpServer`` instead
(``edge/pkg/edgehub/certificate/certmanager.go``). The server needs an IP SAN for 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = datetime.timedelta(days=365)  # edgecore rewrites rotateCertificates away: long-lived


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files one run uses."""

    ca: Path
    server_cert: Path
    server_key: Path
    edge_cert: Path
    edge_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    *,
    ip_san: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if ip_san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip_san))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: Path, node: str) -> Certificates:
    """Write a CA, a server certificate for 127.0.0.1 and an edge certificate for ``node``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kubeedge-sim-ca")
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(
        ca=directory / "ca.crt",
        server_cert=directory / "cloudhub.crt",
        server_key=directory / "cloudhub.key",
        edge_cert=directory / "edge.crt",
        edge_key=directory / "edge.key",
    )
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for subject, cert_path, key_path, usage, ip in (
        (
            "cloudhub",
            paths.server_cert,
            paths.server_key,
            ExtendedKeyUsageOID.SERVER_AUTH,
            "127.0.0.1",
        ),
        (
            f"system:node:{node}",
            paths.edge_cert,
            paths.edge_key,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            None,
        ),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, key, ca_name, ca_key, usage, ip_san=ip)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return paths
