"""The camera and result mappers against the edgecore stand-in, a real runtime and real cameras
on mosquitto, in both topic layouts; restarts of the broker and of "edgecore"."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from device_sim.camera import Camera, CameraConfig
from device_sim.devices import camera_definition
from device_sim.stats import FleetStats
from edge_runtime import MqttTransport
from edgeinfer import camera as contract
from edgeinfer.faces import EMOTIONS
from edgeinfer.twins import CAMERA_TWIN_TYPES, LAST_EMOTION
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceRef, Layout, TwinTopics
from kubeedge_twin.topics import TWIN_UPDATE_DELTA
from mappers import CameraMapper, Connection, MappedDevice, ResultMapper, run_forever
from tests.support.broker import Broker, start_broker, stop_broker
from tests.support.kubeedge import dmi_standin, socket_directory
from tests.support.runtime import make_settings, running_runtime
from tests.support.until import until

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def edgecore(broker: Broker, layout: Layout, unique: str, *names: str) -> Iterator[EdgecoreStandIn]:
    store = TwinStore()
    service = EdgecoreStandIn(broker.url, store, layout=layout, client_id=f"ec-{unique}")
    service.start()
    service.add_devices([camera_definition(name, "edge-node", 2.0) for name in names])
    try:
        yield service
    finally:
        service.stop()
        store.close()


def mapped(*names: str) -> list[MappedDevice]:
    return [
        MappedDevice(DeviceRef(n), "emotion-camera", CAMERA_TWIN_TYPES, (LAST_EMOTION,))
        for n in names
    ]


@contextlib.asynccontextmanager
async def serving(broker: Broker, unique: str, session: Callable) -> AsyncIterator[None]:
    connection = Connection(
        broker.url, client_id=f"mapper-{unique}", reconnect_min_s=0.1, reconnect_max_s=0.4
    )
    task = asyncio.create_task(run_forever(connection, session))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):  # a mapper must stop promptly
                await task


def actual(service: EdgecoreStandIn, device_id: str, name: str) -> str | None:
    device = service.engine.device(device_id)
    twin = device.twins.get(name) if device else None
    return twin.actual.value if twin and twin.actual else None


def state(service: EdgecoreStandIn, device_id: str) -> str | None:
    device = service.engine.device(device_id)
    return device.state if device else None


def _camera(name: str, broker: Broker, settings, stats: FleetStats) -> Camera:
    """A camera at 2 fps, reporting its status every 0.1 s."""
    config = CameraConfig(
        name,
        broker.url,
        settings.runtime_id,
        settings.topic_root,
        fps=2.0,
        jitter=0.0,
        report_interval_s=0.1,
    )
    return Camera(config, stats)


async def sent_in(stats: FleetStats, seconds: float) -> int:
    before = stats.sent
    await asyncio.sleep(seconds)
    return stats.sent - before


@pytest.mark.parametrize("layout", [Layout.V1_4, Layout.V1_17])
async def test_twin_drives_the_camera_and_its_actual_comes_back(broker, registry, unique, layout):
    settings = make_settings(broker.url, registry, unique)
    name = f"cam-{unique}"
    device_id = TwinTopics(layout).device_id(DeviceRef(name))
    mapper = CameraMapper(
        mapped(name),
        topics=TwinTopics(layout),
        topic_root=settings.topic_root,
        report_interval_s=0.1,
    )
    stats = FleetStats()
    camera = _camera(name, broker, settings, stats)
    with edgecore(broker, layout, unique, name) as service:
        async with running_runtime(settings), serving(broker, unique, mapper.session):
            run = asyncio.create_task(camera.run(9.0))
            await until(lambda: state(service, device_id) == "online")
            await until(lambda: actual(service, device_id, "model_version") == "1.0.0")
            assert actual(service, device_id, "capture_fps") == "2"
            assert actual(service, device_id, "enabled") == "true"
            assert actual(service, device_id, "last_emotion") in EMOTIONS

            service.set_desired(device_id, {"capture_fps": "25"})
            await until(lambda: actual(service, device_id, "capture_fps") == "25")
            assert camera.fps == 25
            assert await sent_in(stats, 1.0) >= 15  # was 2 per second

            service.set_desired(device_id, {"enabled": "false"})
            await until(lambda: actual(service, device_id, "enabled") == "false")
            assert await sent_in(stats, 1.0) == 0

            service.set_desired(device_id, {"enabled": "true", "capture_fps": "5"})
            await until(lambda: actual(service, device_id, "enabled") == "true")
            assert actual(service, device_id, "capture_fps") == "5"
            assert 2 <= await sent_in(stats, 1.0) <= 8

            await run  # the camera ends its run: status offline
            await until(lambda: state(service, device_id) == "offline")
    assert stats.lost == stats.failed == 0
    assert mapper.metrics.refused_total("desired") == 0


async def test_bad_twin_messages_are_counted_and_never_fatal(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    name = f"cam-{unique}"
    topics = TwinTopics(Layout.V1_4)
    mapper = CameraMapper(
        mapped(name), topics=topics, topic_root=settings.topic_root, report_interval_s=0.1
    )
    camera = Camera(
        CameraConfig(name, broker.url, settings.runtime_id, settings.topic_root, fps=2.0),
        FleetStats(),
    )
    poke = MqttTransport(
        broker.url, client_id=f"poke-{unique}", clean_start=True, session_expiry_s=0
    )
    with edgecore(broker, Layout.V1_4, unique, name) as service:
        async with running_runtime(settings), serving(broker, unique, mapper.session), poke:
            run = asyncio.create_task(camera.run(4.0))
            await poke.wait_connected(10)
            await until(lambda: state(service, name) == "online")
            await poke.publish(topics.topic(DeviceRef(name), TWIN_UPDATE_DELTA), b"{not json")
            service.set_desired(name, {"capture_fps": "-3"})  # a float, but no rate
            root = settings.topic_root
            await poke.publish(contract.status_topic(root, name), b'{"state": "dancing"}')
            await poke.publish(contract.status_topic(root, f"stranger-{unique}"), b"{}")
            kinds = ("desired", "twin", "status", "unknown_device")
            await until(lambda: all(mapper.metrics.refused_total(k) >= 1 for k in kinds))
            await asyncio.sleep(0.3)  # nothing more arrives
            assert [mapper.metrics.refused_total(k) for k in kinds] == [1, 1, 1, 1]
            assert camera.fps == 2.0
            service.set_desired(name, {"capture_fps": "7"})  # still serving
            await until(lambda: actual(service, name, "capture_fps") == "7")
            async with asyncio.timeout(20):
                await run


async def test_mapper_survives_broker_and_edgecore_restarts(tmp_path, registry, unique):
    broker = start_broker(tmp_path)
    try:
        settings = make_settings(broker.url, registry, unique)
        name = f"cam-{unique}"
        mapper = CameraMapper(
            mapped(name),
            topics=TwinTopics(Layout.V1_4),
            topic_root=settings.topic_root,
            report_interval_s=0.1,
            resync_s=0.5,
        )
        camera = Camera(
            CameraConfig(name, broker.url, settings.runtime_id, settings.topic_root, fps=2.0),
            FleetStats(),
        )
        async with running_runtime(settings), serving(broker, unique, mapper.session):
            with edgecore(broker, Layout.V1_4, unique, name) as service:
                run = asyncio.create_task(camera.run(12.0))
                await until(lambda: state(service, name) == "online")
                stop_broker(broker)
                await asyncio.sleep(0.5)
                broker = start_broker(tmp_path, broker.port)  # same port, nothing retained
                service.set_desired(name, {"capture_fps": "9"})
                await until(lambda: camera.fps == 9, timeout_s=15)
                await until(lambda: actual(service, name, "capture_fps") == "9")
            # "edgecore" restarts with an empty database: the mapper's resync refills it
            with edgecore(broker, Layout.V1_4, f"{unique}b", name) as fresh:
                assert actual(fresh, name, "capture_fps") is None
                await until(lambda: actual(fresh, name, "capture_fps") == "9")
                await until(lambda: state(fresh, name) == "online")
                assert actual(fresh, name, "model_version") == "1.0.0"
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    finally:
        stop_broker(broker)


@pytest.mark.parametrize("layout", [Layout.V1_4, Layout.V1_17])
async def test_result_mapper_reports_what_the_camera_sees(broker, registry, unique, layout):
    settings = make_settings(broker.url, registry, unique)
    name = f"cam-{unique}"
    device_id = TwinTopics(layout).device_id(DeviceRef(name))
    mapper = ResultMapper(
        mapped(name),
        topics=TwinTopics(layout),
        topic_root=settings.topic_root,
        window=1000,
        report_interval_s=0.2,
    )
    stats = FleetStats()
    camera = Camera(
        CameraConfig(name, broker.url, settings.runtime_id, settings.topic_root, fps=20.0),
        stats,
    )
    poke = MqttTransport(
        broker.url, client_id=f"poke-{unique}", clean_start=True, session_expiry_s=0
    )
    with edgecore(broker, layout, unique, name) as service:
        async with running_runtime(settings), serving(broker, unique, mapper.session), poke:
            # Answers are not retained: the camera starts once the mapper has subscribed (it
            # started at once before, and the mapper missed the first answers about 1 run in 6).
            await poke.wait_connected(10)
            stranger = f"{settings.topic_root}/stranger-{unique}/result"
            async with asyncio.timeout(10):
                while mapper.metrics.refused_total("unknown_device") < 1:
                    await poke.publish(stranger, b"")
                    await asyncio.sleep(0.05)
            await camera.run(1.5)

            def counted() -> int:
                counts = actual(service, device_id, "emotion_counts") or ""
                return sum(int(pair.split(":")[1]) for pair in counts.split(",") if pair)

            await until(lambda: counted() == stats.answered)
        counts = actual(service, device_id, "emotion_counts")
        last_emotion = actual(service, device_id, "last_emotion")
    assert re.fullmatch(r"([a-z]+:\d+)(,[a-z]+:\d+)*", counts or "")
    assert {pair.split(":")[0] for pair in counts.split(",")} <= set(EMOTIONS)
    assert last_emotion in EMOTIONS
    assert stats.answered >= 20


@pytest.mark.timeout(30)  # the bug swallowed every cancel, the test's own timeout's too
async def test_a_cancel_that_races_a_lost_connection_still_stops_the_mapper(broker, unique):
    """SIGTERM (a cancel) arriving as the broker goes away: the session's task group raises
    only the children's MqttError and drops the CancelledError. The mapper must stop anyway
    (`make demo` hung here, reconnecting forever)."""
    import aiomqtt

    in_session = asyncio.Event()

    async def fails_when_cancelled() -> None:
        try:
            in_session.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise aiomqtt.MqttError("Disconnected during message iteration") from None

    async def session(_client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(fails_when_cancelled())

    connection = Connection(broker.url, client_id=f"race-{unique}", reconnect_min_s=0.05)
    task = asyncio.create_task(run_forever(connection, session))
    async with asyncio.timeout(10):
        await in_session.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def test_over_dmi_capture_fps_and_enabled_reach_the_camera_and_its_state_comes_back(
    broker, registry, unique
):
    """KubeEdge 1.15+: the stand-in plays edgecore 1.23 (DMI, no MQTT deltas); the camera
    mapper registers for the cameras' protocol and relays desired values to the camera."""
    from kubeedge_twin import DeviceDefinition
    from kubeedge_twin.dmi.mapper import DmiMapper

    settings = make_settings(broker.url, registry, unique)
    name = f"cam-{unique}"
    device_id = f"default/{name}"
    stats = FleetStats()
    camera = _camera(name, broker, settings, stats)
    definition = DeviceDefinition(
        name, desired={n: ("", t) for n, t in CAMERA_TWIN_TYPES.items()}, protocol="emotion-camera"
    )
    with (
        socket_directory() as sockets,
        dmi_standin(broker, sockets, f"ec-dmi-{unique}", definition) as service,
    ):
        dmi = DmiMapper(
            name="camera-mapper",
            protocol="emotion-camera",
            socket=str(sockets / "camera.sock"),
            edgecore_socket=str(sockets),
            resync_s=0.2,
        )
        mapper = CameraMapper(
            mapped(name),
            topics=TwinTopics(Layout.V1_17),
            topic_root=settings.topic_root,
            report_interval_s=0.1,
            dmi=dmi,
        )
        dmi_task = asyncio.create_task(dmi.run())
        try:
            async with running_runtime(settings), serving(broker, unique, mapper.session):
                run = asyncio.create_task(camera.run(6.0))
                await until(lambda: state(service, device_id) == "online")
                await until(lambda: actual(service, device_id, "model_version") == "1.0.0")
                service.set_desired(device_id, {"capture_fps": "25"})
                await until(lambda: actual(service, device_id, "capture_fps") == "25")
                assert camera.fps == 25
                service.set_desired(device_id, {"enabled": "false"})
                await until(lambda: actual(service, device_id, "enabled") == "false")
                assert await sent_in(stats, 1.0) == 0
                await run
                await until(lambda: state(service, device_id) == "offline")
        finally:
            dmi_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dmi_task
    assert stats.lost == stats.failed == 0
    assert service.dmi is not None
    assert service.dmi.calls.count("UpdateDevice") == 2
