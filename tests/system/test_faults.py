"""Faults under load, each with figures (sent, answered, lost, duplicates): the runtime killed and
restarted, the broker restarted with persistence, the broker paused beyond keepalive, the model
store down during a push, the model cache unwritable. Devices use the retry client; lost must
be 0. `make soak` runs the same scenarios longer and prints the table."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from cloud_trainer.push import desired_twins
from cloud_trainer.registry import ArtefactFile, register
from cloud_trainer.store import ModelStore
from edge_runtime import Request, Status, encode_request
from edgeinfer.twins import MODEL_STATUS
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_twin import Layout
from tests.support.broker import free_port, mosquitto_16, start_broker, stop_broker
from tests.support.devices import device, face
from tests.support.faults import Figures, Load, peak_rss_mb, seconds
from tests.support.kubeedge import standin
from tests.support.runtime import make_settings, running_runtime, runtime_process, wait_ready
from tests.support.until import until

pytestmark = pytest.mark.integration


def _runtime(url: str, registry: Path, unique: str, *extra: str) -> subprocess.Popen[bytes]:
    return runtime_process(
        url,
        registry,
        f"rt-{unique}",
        f"faults-{unique}/v1",
        "--mqtt-reconnect-max-s",
        "1",
        *extra,
        output=subprocess.DEVNULL,
    )


@pytest.fixture
def broker(tmp_path: Path):
    """A mosquitto of this test's own (our settings): a fault scenario loads its broker hard
    and must neither inherit nor leave state on the session's shared one."""
    own = start_broker(tmp_path)
    yield own
    stop_broker(own)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_runtime_sigkilled_and_restarted_mid_load(any_broker, registry, unique):
    version = "1.6.15" if "1.6.15" in str(any_broker.process.args) else "2.0"
    figures = Figures(f"runtime SIGKILL + restart (mosquitto {version})")
    runtime = _runtime(any_broker.url, registry, unique)
    try:
        async with Load(any_broker.url, f"faults-{unique}/v1", unique, figures):
            await asyncio.sleep(seconds(2.0))
            figures.peak_rss_mb = peak_rss_mb(runtime.pid)
            runtime.send_signal(signal.SIGKILL)
            runtime.wait(10)
            await asyncio.sleep(1.0)
            runtime = _runtime(any_broker.url, registry, unique)  # same id: resumes the session
            await asyncio.sleep(seconds(3.0))
            figures.peak_rss_mb = max(figures.peak_rss_mb, peak_rss_mb(runtime.pid))
    finally:
        _stop(runtime)
    figures.report()
    assert figures.lost == 0, figures
    assert figures.not_ok == {}, figures
    assert figures.answered == figures.sent


def _persistent_broker_conf(port: int, directory: Path, version: str) -> str:
    conf = f"listener {port} 127.0.0.1\npersistence true\npersistence_location {directory}/\n"
    if version == "2.0":
        conf += "allow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 0\nuser root\n"
    return conf


@pytest.mark.parametrize("version", ["2.0", "1.6.15"])
async def test_broker_restarted_with_persistence_mid_load(version, registry, unique, tmp_path):
    figures = Figures(f"broker restart with persistence (mosquitto {version})")
    port = free_port()
    binary = mosquitto_16() if version == "1.6.15" else None
    conf = _persistent_broker_conf(port, tmp_path, version)
    broker = start_broker(tmp_path, port, conf, binary=binary)
    settings = make_settings(broker.url, registry, unique)
    try:
        async with (
            running_runtime(settings),
            Load(broker.url, settings.topic_root, unique, figures),
        ):
            await asyncio.sleep(seconds(2.0))
            stop_broker(broker)  # SIGTERM: mosquitto saves its sessions and queues
            await asyncio.sleep(1.0)
            broker = start_broker(tmp_path, port, conf, binary=binary)
            await asyncio.sleep(seconds(4.0))
    finally:
        stop_broker(broker)
    figures.report()
    assert figures.lost == 0, figures
    assert figures.not_ok == {}, figures


async def test_broker_paused_longer_than_keepalive(registry, unique, tmp_path):
    figures = Figures("broker paused beyond keepalive (mosquitto 2.0)")
    broker = start_broker(tmp_path)
    settings = make_settings(broker.url, registry, unique, **{"mqtt.keepalive_s": 2})
    try:
        async with (
            running_runtime(settings) as runtime,
            Load(broker.url, settings.topic_root, unique, figures, keepalive_s=2),
        ):
            await asyncio.sleep(seconds(1.5))
            connections = runtime.transport.connections
            broker.process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(5.0)  # 2.5 keepalives: every client gives the connection up
            broker.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(seconds(4.0))
            reconnected = runtime.transport.connections > connections
    finally:
        stop_broker(broker)
    figures.report()
    assert reconnected
    assert figures.lost == 0, figures
    assert figures.not_ok == {}, figures


@pytest.fixture(scope="module")
def push_registry(registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with 1.0.0 and 1.1.0 (the same weights)."""
    root = tmp_path_factory.mktemp("push-registry")
    shutil.copytree(registry / "emotion" / "1.0.0", root / "emotion" / "1.0.0")
    source = root / "emotion" / "1.0.0" / "model.tflite"
    files = [ArtefactFile(source, "model.tflite", "tflite", "float32")]
    register(root, name="emotion", version="1.1.0", files=files, height=64, width=64)
    return root


@pytest.mark.parametrize("fault", ["store down", "cache unwritable"])
async def test_a_push_that_cannot_land_leaves_the_old_model_serving(
    fault, broker, push_registry, unique, tmp_path
):
    """The model store is down during a push, or the model cache cannot be written: the
    runtime reports failed:<reason>, keeps serving 1.0.0 and loses no request."""
    figures = Figures(f"push with the model {fault}")
    cache = tmp_path / "cache"
    if fault == "cache unwritable":
        # Root ignores file modes: a plain file where the cache's parent directory should be.
        (tmp_path / "not-a-directory").write_text("")
        cache = tmp_path / "not-a-directory" / "cache"
    settings = make_settings(
        broker.url,
        push_registry,
        unique,
        **{"twin.enabled": True, "twin.cache_dir": str(cache), "twin.fetch_timeout_s": 3.0},
    )
    store = ModelStore(push_registry)
    store.start()
    wanted = desired_twins(push_registry, "emotion", "1.1.0", store.url)
    if fault == "store down":
        store.stop()
    device_id = settings.twin_device
    try:
        with standin(broker, Layout.V1_4, device_id) as edgecore:
            async with (
                running_runtime(settings) as runtime,
                Load(broker.url, settings.topic_root, unique, figures),
            ):
                await asyncio.sleep(seconds(1.0))
                edgecore.set_desired(device_id, wanted)
                await until(lambda: _reported(edgecore, device_id).startswith("failed:"))
                await asyncio.sleep(seconds(1.0))
                serving = runtime.model.ref.version
                status = _reported(edgecore, device_id)
    finally:
        if fault != "store down":
            store.stop()
    figures.report()
    assert serving == "1.0.0"
    assert status.startswith("failed:"), status
    assert figures.lost == 0, figures
    assert figures.not_ok == {}, figures


def _reported(edgecore: EdgecoreStandIn, device_id: str) -> str:
    device = edgecore.engine.device(device_id)
    assert device is not None
    twin = device.twins.get(MODEL_STATUS)
    return twin.actual.value if twin is not None and twin.actual is not None else ""


async def test_overload_far_beyond_capacity_is_bounded_and_recovers(broker, registry, unique):
    """10,000 requests published as fast as four clients can, several times what the runtime
    answers per second: the runtime holds at most Receive Maximum of them (the rest wait at the
    broker), its memory stays flat, requests it took are answered promptly, and every request
    is answered once the flood has drained."""
    flood = 10_000
    root = f"faults-{unique}/v1"
    figures = Figures("overload: 10,000 requests at once (mosquitto 2.0)")
    port = free_port()
    runtime = _runtime(
        broker.url, registry, unique, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        idle_mb = peak_rss_mb(runtime.pid)
        async with contextlib.AsyncExitStack() as stack:
            cams = [
                await stack.enter_async_context(
                    device(broker.url, root, f"flood{d}", max_outgoing_inflight=0)  # unthrottled
                )
                for d in range(4)
            ]
            started = time.monotonic()
            for i in range(flood):
                cam = cams[i % len(cams)]
                cam.transport.publish_nowait(
                    cam.request_topic(), encode_request(Request(f"f{i}", cam.name, 0, (face(i),)))
                )
                if i % 200 == 0:
                    await asyncio.sleep(0)  # let the writes go out
            figures.sent = flood
            published_s = time.monotonic() - started
            answered: set[tuple[str, str]] = set()
            async with asyncio.timeout(120):
                while len(answered) < flood:
                    for cam in cams:
                        while not cam.responses.empty():
                            answered.add((cam.name, cam.responses.get_nowait()[1].request_id))
                    await asyncio.sleep(0.05)
            drained_s = time.monotonic() - started
            figures.answered = len(answered)
            figures.peak_rss_mb = peak_rss_mb(runtime.pid)
            probe_start = time.monotonic()
            await cams[0].send(Request("after", cams[0].name, 0, (face(1),)))
            (after,) = await cams[0].receive(1)
            probe_s = time.monotonic() - probe_start
        text = await asyncio.to_thread(_metrics, port)
    finally:
        _stop(runtime)
    figures.lost = flood - figures.answered
    figures.report()
    print(f"published in {published_s:.1f} s, drained in {drained_s:.1f} s, probe {probe_s:.3f} s")
    assert figures.lost == 0
    assert after.status is Status.OK
    assert figures.peak_rss_mb - idle_mb < 40, (idle_mb, figures.peak_rss_mb)
    assert 'edge_requests_total{frontdoor="mqtt",status="OK"}' in text
    # Requests the runtime took waited at most for the Receive Maximum window ahead of them.
    assert _bucket_share(text, "edge_request_seconds", 1.0) > 0.99
    assert probe_s < 1.0


def _metrics(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return str(reply.read().decode())


def _bucket_share(text: str, histogram: str, le: float) -> float:
    """The share of a Prometheus histogram's observations at or below ``le``."""
    values = {}
    for line in text.splitlines():
        if line.startswith(f"{histogram}_bucket{{"):
            bound = line.split('le="')[1].split('"')[0]
            values[bound] = float(line.rsplit(" ", 1)[1])
    return values[str(le)] / values["+Inf"]


async def test_edgecore_restarted_mid_load(broker, registry, unique):
    """The edgecore stand-in stops and comes back with its database (edgecore keeps edge.db)
    under load: requests do not depend on it, and the runtime's reported twin is still there."""
    from edgeinfer.twins import MODEL_VERSION, RUNTIME_TWINS
    from kubeedge_sim.standin import EdgecoreStandIn
    from kubeedge_sim.store import TwinStore
    from kubeedge_twin import DeviceDefinition

    figures = Figures("edgecore (stand-in) restart")
    settings = make_settings(broker.url, registry, unique, **{"twin.enabled": True})
    device_id = settings.twin_device
    store = TwinStore()
    definition = DeviceDefinition(device_id, desired={n: ("", "string") for n in RUNTIME_TWINS})

    def start() -> EdgecoreStandIn:
        service = EdgecoreStandIn(broker.url, store, client_id=f"ec-{unique}")
        service.start()
        service.add_devices([definition])
        return service

    service = start()
    try:
        async with (
            running_runtime(settings),
            Load(broker.url, settings.topic_root, unique, figures),
        ):
            await asyncio.sleep(seconds(1.0))
            service.stop()
            await asyncio.sleep(1.0)
            service = start()
            await asyncio.sleep(seconds(1.0))
            device = service.engine.device(device_id)
            twin = device.twins.get(MODEL_VERSION) if device else None
            reported = twin.actual.value if twin is not None and twin.actual else None
    finally:
        service.stop()
        store.close()
    figures.report()
    assert figures.lost == 0, figures
    assert figures.not_ok == {}, figures
    assert reported == "1.0.0"
