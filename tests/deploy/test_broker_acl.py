"""The production broker config: TLS, passwords and per-device ACLs, with real clients."""

from __future__ import annotations

import datetime
import queue
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Broker, free_port, start_broker, stop_broker
from tests.support.paths import REPO

pytestmark = pytest.mark.integration
MOSQUITTO = REPO / "deploy" / "mosquitto"
USERS = ("cam-1", "cam-2", "edge-runtime", "edgecore", "camera-mapper", "result-mapper")


def _certificate(name: str, key: ec.EllipticCurvePrivateKey, issuer_key, issuer_name, ca: bool):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(directory: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = _certificate("test-ca", ca_key, ca_key, ca_name, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("localhost", server_key, ca_key, ca_name, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "server.crt").write_bytes(server.public_bytes(pem))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Path]]:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        pytest.fail("mosquitto_passwd missing (the mosquitto package ships it)")
    directory = tmp_path_factory.mktemp("secure-broker")
    _write_pki(directory)
    passwords = directory / "passwords"
    passwords.touch()
    for user in USERS:
        subprocess.run([tool, "-b", str(passwords), user, f"{user}-secret"], check=True)
    tls_port, plain_port = free_port(), free_port()
    conf = (MOSQUITTO / "mosquitto-prod.conf").read_text()
    conf = (
        conf.replace("/mosquitto/config/passwords", str(passwords))
        .replace("/mosquitto/config/acl", str(MOSQUITTO / "acl"))
        .replace("/mosquitto/certs/", f"{directory}/")
        .replace("/mosquitto/data/", f"{directory}/")
        .replace("listener 8883", f"listener {tls_port}")
        .replace("listener 1883 127.0.0.1", f"listener {plain_port} 127.0.0.1")
    )
    # Started as root, mosquitto would switch to its own user, which cannot read pytest's
    # private temporary directories; in production the files are mounted readable for it.
    conf += "user root\n"
    broker = start_broker(directory, port=plain_port, conf=conf)
    yield Broker("localhost", tls_port, broker.process), directory
    stop_broker(broker)


class Client:
    """A paho client over TLS that queues what it receives."""

    def __init__(self, broker: Broker, pki: Path, user: str, password: str | None = None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected: queue.Queue[object] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}")
        self.client.tls_set(ca_certs=str(pki / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
        if user:
            self.client.username_pw_set(user, password or f"{user}-secret")
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connected.put(reason)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.reason = self.connected.get(timeout=10)

    def subscribe(self, *topics: str) -> None:
        done: queue.Queue[object] = queue.Queue()
        self.client.on_subscribe = lambda *_: done.put(True)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
            done.get(timeout=5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def attempt(self, topic: str, payload: bytes) -> str:
        """Publish where the ACL may deny it: "acked" or "disconnected" (mosquitto 2
        disconnects an MQTT 3.1.1 client that publishes where it may not)."""
        outcome: queue.Queue[str] = queue.Queue()
        self.client.on_publish = lambda *_: outcome.put("acked")
        self.client.on_disconnect = lambda *_: outcome.put("disconnected")
        self.client.publish(topic, payload, qos=1)
        return outcome.get(timeout=5)

    def until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including ``payload``."""
        seen = []
        while True:
            item = self.received.get(timeout=5)
            seen.append(item)
            if item[1] == payload:
                return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho leaves its wake-up socket pair to __del__; a refused or cut-off client would
        # surface as an unclosed-socket warning in whichever later test the GC runs.
        self.client._reset_sockets()


def test_unauthenticated_and_wrong_password_are_refused(secure_broker):
    broker, pki = secure_broker
    anonymous = Client(broker, pki, "")
    wrong = Client(broker, pki, "cam-1", "guess")
    try:
        assert anonymous.reason.is_failure
        assert wrong.reason.is_failure
    finally:
        anonymous.close()
        wrong.close()


def test_devices_reach_only_their_own_topics_and_never_hw(secure_broker):
    broker, pki = secure_broker
    runtime = Client(broker, pki, "edge-runtime")
    edgecore = Client(broker, pki, "edgecore")
    cam1 = None
    try:
        assert not runtime.reason.is_failure
        runtime.subscribe("emotion/v1/+/request")
        edgecore.subscribe("$hw/#")
        # cam-1 impersonating cam-2, and touching twins: dropped (and cam-1 cut off).
        for topic in ("emotion/v1/cam-2/request", "$hw/events/device/cam-2/twin/update"):
            forger = Client(broker, pki, "cam-1")
            try:
                assert forger.attempt(topic, b"forged") in {"acked", "disconnected"}
            finally:
                forger.close()
        cam1 = Client(broker, pki, "cam-1")
        cam1.subscribe("emotion/v1/cam-1/result", "emotion/v1/cam-2/result")
        cam1.publish("emotion/v1/cam-1/request", b"own")
        assert runtime.until(b"own") == [("emotion/v1/cam-1/request", b"own")]
        # The runtime answers both cameras; cam-1 only hears its own answer.
        runtime.publish("emotion/v1/cam-2/result", b"for-cam-2")
        runtime.publish("emotion/v1/cam-1/result", b"for-cam-1")
        assert cam1.until(b"for-cam-1") == [("emotion/v1/cam-1/result", b"for-cam-1")]
        # The runtime may report twins; edgecore sees that, and never cam-1's forgery.
        runtime.publish("$hw/events/device/emotion-runtime-a/twin/update", b"report")
        assert edgecore.until(b"report") == [
            ("$hw/events/device/emotion-runtime-a/twin/update", b"report")
        ]
    finally:
        for client in (runtime, edgecore, cam1):
            if client is not None:
                client.close()


def test_camera_mapper_reaches_every_camera_and_cameras_only_their_own(secure_broker):
    broker, pki = secure_broker
    mapper = Client(broker, pki, "camera-mapper")
    cam1 = Client(broker, pki, "cam-1")
    try:
        mapper.subscribe("emotion/v1/+/status")
        cam1.subscribe("emotion/v1/cam-1/control", "emotion/v1/cam-2/control")
        cam1.publish("emotion/v1/cam-1/status", b"cam-1 online")
        assert mapper.until(b"cam-1 online") == [("emotion/v1/cam-1/status", b"cam-1 online")]
        mapper.publish("emotion/v1/cam-2/control", b"for-cam-2")
        mapper.publish("emotion/v1/cam-1/control", b"for-cam-1")
        assert cam1.until(b"for-cam-1") == [("emotion/v1/cam-1/control", b"for-cam-1")]
    finally:
        mapper.close()
        cam1.close()
    forger = Client(broker, pki, "cam-1")
    watcher = Client(broker, pki, "camera-mapper")
    try:
        watcher.subscribe("emotion/v1/+/status")
        assert forger.attempt("emotion/v1/cam-2/status", b"forged") in {"acked", "disconnected"}
        honest = Client(broker, pki, "cam-2")
        try:
            honest.publish("emotion/v1/cam-2/status", b"cam-2 online")
            assert watcher.until(b"cam-2 online") == [("emotion/v1/cam-2/status", b"cam-2 online")]
        finally:
            honest.close()
    finally:
        forger.close()
        watcher.close()


async def test_the_runtime_over_tls_with_the_acl_answers_and_never_shows_its_password(
    secure_broker, registry, tmp_path, caplog
):
    """The runtime as user edge-runtime (password from a file, TLS, production ACL) serves a
    device; the password is in no log line, metric or retained message."""
    import asyncio
    import logging

    from prometheus_client import generate_latest

    from edge_runtime import Request, Status, decode_response, encode_request
    from tests.support.devices import face
    from tests.support.runtime import make_settings, running_runtime

    broker, pki = secure_broker
    password = "edge-runtime-secret"  # noqa: S105 - the test broker's password
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    settings = make_settings(
        f"mqtts://localhost:{broker.port}",
        registry,
        "tls",
        **{
            "runtime_id": "node-tls",
            "topic_root": "emotion/v1",
            "mqtt.username": "edge-runtime",
            "mqtt.password_file": str(secret),
            "mqtt.ca_file": str(pki / "ca.crt"),
        },
    )
    device = Client(broker, pki, "cam-1")
    try:
        device.subscribe("emotion/v1/cam-1/result", "emotion/v1/runtime/node-tls/#")
        with caplog.at_level(logging.DEBUG):
            async with running_runtime(settings) as runtime:
                device.publish(
                    "emotion/v1/cam-1/request",
                    encode_request(Request("tls-1", "cam-1", 0, (face(1),))),
                )
                seen = await asyncio.to_thread(device.until, b"online")
                answers = []
                while not answers:
                    topic, payload = await asyncio.to_thread(device.received.get, True, 10)
                    seen.append((topic, payload))
                    if topic.endswith("/result"):
                        answers.append(payload)
                metrics = generate_latest(runtime.metrics.registry)
    finally:
        device.close()
    assert decode_response(answers[0]).status is Status.OK
    assert password not in caplog.text
    assert password.encode() not in metrics
    assert all(password.encode() not in payload for _, payload in seen)
