"""Conformance: each scenario runs against our stand-in and against KubeEdge's real edgecore,
and must see the same thing on both (the stand-in is our reading of edgecore's source; the real
one, built from that source, checks the reading).

DMI scenarios play KubeEdge 1.15+ (stand-in 1.23 mode, edgecore v1.23.1), MQTT twin scenarios
KubeEdge 1.4 (stand-in 1.4 mode, edgecore v1.4.0).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from edge_runtime import (
    FaceResult,
    MqttTransport,
    Request,
    Response,
    Status,
    Topics,
    WireFormat,
    encode_response,
)
from edgeinfer import camera as contract
from edgeinfer.twins import CAMERA_TWIN_TYPES
from kubeedge_twin import DeviceRef, Layout, TwinTopics
from kubeedge_twin.dmi.mapper import DmiMapper
from mappers import CameraMapper, Connection, MappedDevice, ResultMapper, run_forever
from tests.kubeedge_sim.sides import (
    DEPLOY,
    RUNTIME,
    desired_until,
    documents,
    kubeedge,
    mqtt_twin,
    reported_until,
    running,
    runtime_documents,
    runtime_mapper,
    until,
)
from tests.support.broker import free_port
from tests.support.devices import device, face
from tests.support.kubeedge import crd_schema, socket_directory
from tests.support.runtime import make_settings, running_runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SIDES = ["standin", "real"]


def camera_dmi_mapper(side, directory: Path) -> DmiMapper:
    """The DMI side of a camera mapper, registering for the cameras' protocol."""
    return DmiMapper(
        name="camera-mapper",
        protocol="emotion-camera",
        socket=str(directory / "cam.sock"),
        edgecore_socket=str(side.dmi_directory),
        resync_s=0.5,
    )


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes: pytest's tmp_path can be longer."""
    with socket_directory() as directory:
        yield directory


@pytest.mark.parametrize("which", SIDES)
async def test_dmi_a_device_known_before_the_mapper_then_edited_then_reported(
    which, broker, short_tmp, unique
):
    """The Device reaches edgecore first: MapperRegister(withData) carries it; a cloud edit comes
    as UpdateDevice; a report reaches the cloud."""
    docs = runtime_documents("v1beta1", model_version="1.0.0")
    for doc in docs:  # configData reaches the mapper as edgecore's ConvertDevice packs it
        if doc["kind"] == "Device":
            doc["spec"]["protocol"]["configData"] = {
                "host": "gpu-1.local",
                "port": 554,
                "hdr": True,
            }
    async with kubeedge(which, True, broker.url, short_tmp, unique) as side:
        await side.apply(docs)
        await asyncio.sleep(0.5)  # edgecore stores it before any mapper asks
        mapper = runtime_mapper(side, short_tmp)
        twin = mapper.follow("default", RUNTIME)
        async with running(mapper):
            await desired_until(twin, "model_version", "1.0.0")
            await side.set_desired(f"default/{RUNTIME}", {"model_version": "1.1.0"})
            await desired_until(twin, "model_version", "1.1.0")
            await asyncio.wait_for(twin.report({"model_version": "1.1.0"}), 30)
            await twin.report({"model_status": "serving"})
            await reported_until(
                side, f"default/{RUNTIME}", model_version="1.1.0", model_status="serving"
            )
        assert twin.current() == {
            "model_version": "1.1.0",
            "model_uri": "",
            "model_sha256": "",
            "model_signature": "",
            "model_status": "",
            "offload_policy": "",
            "offload_rate": "",
        }
        # every number a float32 FloatValue after Go's JSON round trip (util.go dataToAny)
        assert twin.config() == {"host": "gpu-1.local", "port": 554.0, "hdr": True}
        status = side.device_status(f"default/{RUNTIME}")
    assert status is not None
    jsonschema.validate(status, crd_schema("DeviceStatus", "v1beta1"))
    values = {
        t["propertyName"]: (t["reported"]["value"], t["observedDesired"]["value"])
        for t in status["status"]["twins"]
    }
    assert values == {"model_version": ("1.1.0", "1.1.0"), "model_status": ("serving", "")}


@pytest.mark.parametrize("which", SIDES)
@pytest.mark.parametrize("release", ["1.4", "1.23"])
async def test_the_runtime_takes_its_offload_rule_and_reports_the_rule_and_rate(
    release, which, broker, registry, short_tmp, unique, tmp_path
):
    """Joint inference through the runtime's Device: ``offload_policy`` set in the cloud reaches
    the runtime (a delta on 1.4, UpdateDevice on 1.23); the rule in force and ``offload_rate``
    reach the cloud."""
    current = release == "1.23"
    device_id = f"default/{RUNTIME}" if current else RUNTIME
    async with kubeedge(which, current, broker.url, short_tmp, unique) as side:
        await side.apply(runtime_documents("v1beta1" if current else "v1alpha2"))
        settings = make_settings(
            broker.url,
            registry,
            unique,
            **{
                "twin.enabled": True,
                "twin.kubeedge_version": release,
                "twin.device": RUNTIME,
                "twin.cache_dir": str(tmp_path / "cache"),
                "dmi.edgecore_socket": str(side.dmi_directory),
                "dmi.socket": str(short_tmp / "rt.sock"),
                "offload.url": f"http://127.0.0.1:{free_port()}",  # refused: the edge answers
                "offload.breaker_failures": 10_000,
                "offload.report_interval_s": 0.5,
            },
        )
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await reported_until(side, device_id, offload_policy="margin,threshold:0.3")
            await side.set_desired(device_id, {"offload_policy": "always"})
            await reported_until(side, device_id, offload_policy="always,threshold:0.3")
            await cam.send(Request("r1", "cam", 0, (face(1),)))
            await cam.receive(1)
            await reported_until(side, device_id, offload_rate="1.0000")


@pytest.mark.parametrize("which", SIDES)
async def test_dmi_a_device_applied_after_the_mapper_registered_reaches_it(
    which, broker, short_tmp, unique
):
    """The mapper registers with no devices; the cloud then applies one. (Edgecore v1.23.1 may
    drop the RegisterDevice, the model not yet in its cache: the mapper registers again.)"""
    async with kubeedge(which, True, broker.url, short_tmp, unique) as side:
        mapper = runtime_mapper(side, short_tmp)
        twin = mapper.follow("default", RUNTIME)
        async with running(mapper):
            await asyncio.wait_for(mapper.registered.wait(), 30)
            await side.apply(runtime_documents("v1beta1", model_version="1.0.0"))
            await desired_until(twin, "model_version", "1.0.0")


@pytest.mark.parametrize("which", SIDES)
async def test_dmi_the_camera_mapper_serves_a_camera_it_was_never_told_of(
    which, broker, short_tmp, unique
):
    """No device file: the cloud applies a camera, edgecore hands it to the camera mapper, and
    its desired capture_fps reaches the camera's control topic."""
    root = f"emotion-{unique}"
    async with kubeedge(which, True, broker.url, short_tmp, unique) as side:
        dmi = camera_dmi_mapper(side, short_tmp)
        mapper = CameraMapper(
            [], topics=TwinTopics(Layout.V1_17), topic_root=root, dmi=dmi, model="emotion-camera"
        )
        watcher = MqttTransport(
            broker.url,
            client_id=f"watch-{unique}",
            clean_start=True,
            session_expiry_s=0,
            subscriptions=[(contract.control_topic(root, "cam-00"), 1)],
        )
        connection = Connection(broker.url, client_id=f"cam-mapper-{unique}")
        async with watcher, asyncio.TaskGroup() as tasks:
            await watcher.wait_connected(10)
            dmi_task = tasks.create_task(dmi.run())
            session = tasks.create_task(run_forever(connection, mapper.session))
            await asyncio.wait_for(dmi.registered.wait(), 30)
            await side.apply(documents("v1beta1", "camera-model.yaml", "camera-device.yaml"))
            await until(lambda: "cam-00" in mapper.served)  # edgecore's RegisterDevice
            await side.set_desired("default/cam-00", {"capture_fps": "2"})
            async with asyncio.timeout(30):
                async for message in watcher.messages():
                    if contract.CameraControl.decode(message.payload).capture_fps == 2:
                        break
            session.cancel()
            dmi_task.cancel()


@pytest.mark.parametrize("which", SIDES)
async def test_dmi_the_results_mapper_reports_beside_the_camera_mapper_without_registering(
    which, broker, short_tmp, unique
):
    """The cameras' protocol is the camera mapper's; the results mapper reports their
    last_emotion and emotion_counts over DMI all the same (report-only: edgecore takes reports
    from any client of its socket), and the camera mapper keeps its registration."""
    root = f"emotion-{unique}"
    async with kubeedge(which, True, broker.url, short_tmp, unique) as side:
        camera_dmi = camera_dmi_mapper(side, short_tmp)
        camera_twin = camera_dmi.follow("default", "cam-00")
        results_dmi = DmiMapper(
            name="results-mapper",
            protocol="emotion-camera",
            edgecore_socket=str(side.dmi_directory),
            resync_s=0.5,
            report_only=True,
        )
        device = MappedDevice(DeviceRef("cam-00"), "emotion-camera", CAMERA_TWIN_TYPES, ())
        mapper = ResultMapper(
            [device],
            topics=TwinTopics(Layout.V1_17),
            topic_root=root,
            report_interval_s=0.2,
            dmi=results_dmi,
        )
        answer = encode_response(
            Response(
                request_id="r1",
                device_id="cam-00",
                status=Status.OK,
                results=(FaceResult("happy", 0, 0.9, (0.9, 0.1)),),
            ),
            WireFormat.PROTOBUF,
        )
        poke = MqttTransport(
            broker.url, client_id=f"poke-{unique}", clean_start=True, session_expiry_s=0
        )
        connection = Connection(broker.url, client_id=f"results-mapper-{unique}")
        await side.apply(documents("v1beta1", "camera-model.yaml", "camera-device.yaml"))
        async with poke, running(camera_dmi), asyncio.TaskGroup() as tasks:
            await poke.wait_connected(10)
            await desired_until(camera_twin, "capture_fps", "2")  # the camera mapper has it
            dmi_task = tasks.create_task(results_dmi.run())
            session = tasks.create_task(run_forever(connection, mapper.session))
            async with asyncio.timeout(30):
                while side.reported("default/cam-00").get("last_emotion") != "happy":
                    await poke.publish(Topics(root).result("cam-00"), answer)
                    await asyncio.sleep(0.3)
            await reported_until(side, "default/cam-00", last_emotion="happy")
            assert side.reported("default/cam-00")["emotion_counts"].startswith("happy:")
            assert results_dmi.registrations == 0
            assert camera_dmi.registrations >= 1
            session.cancel()
            dmi_task.cancel()


@pytest.mark.parametrize("which", SIDES)
async def test_mqtt_1_4_get_a_cloud_edit_as_a_delta_and_a_report(which, broker, short_tmp, unique):
    """KubeEdge 1.4: twin/get answers the Device's twins; a cloud edit leaves edgecore as a
    twin/update/delta; a report lands as the twin's actual value."""
    async with kubeedge(which, False, broker.url, short_tmp, unique) as side:
        await side.apply(runtime_documents("v1alpha2", model_version="1.0.0"))
        async with mqtt_twin(broker.url, RUNTIME, f"twin-{unique}") as client:
            await client.resync()
            await desired_until(client, "model_version", "1.0.0")
            await side.set_desired(RUNTIME, {"model_version": "1.1.0"})
            await desired_until(client, "model_version", "1.1.0")
            await client.report({"model_version": "1.1.0", "model_status": "serving"})
            await reported_until(side, RUNTIME, model_version="1.1.0", model_status="serving")
            twins = await client.get()
    assert twins["model_version"].expected is not None
    assert twins["model_version"].expected.value == "1.1.0"
    assert twins["model_version"].actual is not None
    assert twins["model_version"].actual.value == "1.1.0"


@pytest.mark.parametrize("which", SIDES)
async def test_mqtt_1_4_a_twin_get_sent_while_edgecore_is_down_is_asked_again(
    which, broker, short_tmp, unique
):
    """Edgecore 1.4 subscribes with a clean session and publishes nothing when it starts: a
    twin/get sent while it is down is lost, so the client asks again until it answers."""
    async with kubeedge(which, False, broker.url, short_tmp, unique) as side:
        await side.apply(runtime_documents("v1alpha2", model_version="1.3.0"))
        async with mqtt_twin(broker.url, RUNTIME, f"probe-{unique}") as probe:
            await probe.resync()
            await desired_until(probe, "model_version", "1.3.0")
        await side.stop_edgecore()
        async with mqtt_twin(broker.url, RUNTIME, f"twin-{unique}") as client:
            resync = asyncio.create_task(client.resync(first_timeout_s=0.5, max_wait_s=2))
            await asyncio.sleep(2)
            assert not resync.done()  # nobody answered
            await side.start_edgecore()
            await asyncio.wait_for(resync, 30)
            await desired_until(client, "model_version", "1.3.0")


@pytest.mark.parametrize("which", SIDES)
async def test_dmi_reports_beyond_edgecores_rate_limit_all_land(which, broker, short_tmp, unique):
    """Edgecore allows a node's DMI calls a burst of 100, then one a second ("too many
    request" beyond, server.go): 105 devices reporting at once are refused some calls, and the
    mapper's retries land every value."""
    count = 105
    (model,) = [d for d in runtime_documents("v1beta1") if d["kind"] == "DeviceModel"]
    (device,) = [d for d in runtime_documents("v1beta1") if d["kind"] == "Device"]
    names = [f"rt-{i:03d}" for i in range(count)]
    devices = []
    for name in names:
        clone = copy.deepcopy(device)
        clone["metadata"]["name"] = name
        devices.append(clone)
    async with kubeedge(which, True, broker.url, short_tmp, unique) as side:
        await side.apply([model, *devices])
        mapper = runtime_mapper(side, short_tmp)
        twins = [mapper.follow("default", name) for name in names]
        async with running(mapper):
            await until(lambda: all(t.current() is not None for t in twins), timeout_s=90)
            reports = [t.report({"model_status": f"s-{t.name}"}) for t in twins]
            await asyncio.wait_for(asyncio.gather(*reports), 120)
            for name in names:
                await reported_until(side, f"default/{name}", model_status=f"s-{name}")
        assert mapper.rate_limited > 0  # the limit was really hit


@pytest.mark.parametrize("which", SIDES)
async def test_mqtt_1_4_a_device_bound_later_is_asked_for_until_it_exists(
    which, broker, short_tmp, unique
):
    """twin/get for a Device the cloud has not bound yet answers 404; the client asks again
    until the Device exists."""
    async with (
        kubeedge(which, False, broker.url, short_tmp, unique) as side,
        mqtt_twin(broker.url, RUNTIME, f"twin-{unique}") as client,
    ):
        resync = asyncio.create_task(client.resync(first_timeout_s=0.5, max_wait_s=1))
        await asyncio.sleep(2)
        assert not resync.done()  # 404s so far
        await side.apply(runtime_documents("v1alpha2", model_version="1.0.0"))
        await asyncio.wait_for(resync, 30)
        await desired_until(client, "model_version", "1.0.0")


@pytest.mark.parametrize("which", SIDES)
async def test_mqtt_1_4_the_camera_mapper_relays_a_cloud_edit_and_the_cameras_status(
    which, broker, short_tmp, unique
):
    """KubeEdge 1.4, the camera mapper on MQTT twins: a cloud edit of capture_fps reaches the
    camera's control topic, and the camera's status comes back as the twin's actual value."""
    from mappers.profile import load_devices

    root = f"emotion-{unique}"
    devices = load_devices([DEPLOY / "v1alpha2" / "camera-device.yaml"], "emotion-camera")
    mapper = CameraMapper(
        devices, topics=TwinTopics(Layout.V1_4), topic_root=root, report_interval_s=0.1
    )
    watcher = MqttTransport(
        broker.url,
        client_id=f"watch-{unique}",
        clean_start=True,
        session_expiry_s=0,
        subscriptions=[(contract.control_topic(root, "cam-00"), 1)],
    )
    async with kubeedge(which, False, broker.url, short_tmp, unique) as side:
        await side.apply(documents("v1alpha2", "camera-model.yaml", "camera-device.yaml"))
        connection = Connection(broker.url, client_id=f"cam-mapper-{unique}")
        async with watcher, asyncio.TaskGroup() as tasks:
            await watcher.wait_connected(10)
            session = tasks.create_task(run_forever(connection, mapper.session))
            await side.set_desired("cam-00", {"capture_fps": "2"})
            async with asyncio.timeout(30):
                async for message in watcher.messages():
                    if contract.CameraControl.decode(message.payload).capture_fps == 2:
                        break
            status = contract.CameraStatus(state="online", capture_fps=2.0, enabled=True)
            await watcher.publish(contract.status_topic(root, "cam-00"), status.encode())
            await reported_until(side, "cam-00", capture_fps="2", enabled="true")
            session.cancel()
