"""KubeEdge's real edgecore (built from its source), its cloud half played by our CloudHub.

DMI scenarios against v1.23.1, MQTT twin scenarios against v1.4.0; everything from edgehub to the
DMI server, metamanager's sqlite and eventbus is KubeEdge's own code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge_runtime import MqttTransport
from kubeedge_sim import CURRENT, LEGACY, EdgeNode, Report, load_documents
from kubeedge_twin import DeviceRef, Layout, TwinClient, TwinTopics
from kubeedge_twin.dmi.mapper import DmiMapper, DmiTwin
from tests.conftest import REPO, edgecore_binary
from tests.helpers import socket_directory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DEPLOY = REPO / "deploy" / "kubeedge"
RUNTIME_DEVICE = "emotion-runtime-demo-node"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes: pytest's tmp_path can be longer."""
    with socket_directory() as directory:
        yield directory


@contextlib.asynccontextmanager
async def edge_node(directory: Path, version: str, broker_url: str) -> AsyncIterator[EdgeNode]:
    async with EdgeNode(
        edgecore_binary(version), version, directory, node="node-a", broker=broker_url
    ) as node:
        try:
            yield node
        except BaseException:
            if node.edgecore is not None:  # what edgecore did, in the failure's report
                print(node.edgecore.log_tail(20000))
            raise


def runtime_documents(api: str) -> list[dict]:
    return load_documents(
        [
            DEPLOY / api / "inference-service-model.yaml",
            DEPLOY / api / "inference-service-device.yaml",
        ]
    )


@contextlib.asynccontextmanager
async def running(mapper: DmiMapper) -> AsyncIterator[DmiMapper]:
    task = asyncio.create_task(mapper.run())
    try:
        yield mapper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _mapper(node: EdgeNode, directory: Path, resync_s: float = 1.0) -> DmiMapper:
    return DmiMapper(
        name="edgeinfer-mapper",
        protocol="edgeinfer",
        socket=str(directory / "m.sock"),
        edgecore_socket=str(node.dmi_directory),
        resync_s=resync_s,
    )


async def _reported(node: EdgeNode, device_id: str, **values: str) -> None:
    """Wait until the cloud holds ``values`` as the Device's reported values."""

    def holds() -> bool:
        reported = (node.hub.reports.get(device_id) or Report()).reported
        return all(reported.get(k) == v for k, v in values.items())

    await node.hub.wait_for(holds)


async def _desired_until(twin: DmiTwin, key: str, value: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        async for desired in twin.desired():
            if desired.get(key) == value:
                return


async def test_dmi_a_device_applied_after_the_mapper_registered_arrives_and_reports_reach_the_cloud(
    broker, short_tmp
):
    """The mapper registers first (no devices yet); the cloud then creates the DeviceModel and
    the Device: edgecore hands the Device over with RegisterDevice, a desired edit arrives as
    UpdateDevice, and the report reaches the cloud as twin/edge_updated."""
    async with edge_node(short_tmp, CURRENT, broker.url) as node:
        mapper = _mapper(node, short_tmp)
        twin = mapper.follow("default", RUNTIME_DEVICE)
        async with running(mapper):
            await asyncio.wait_for(mapper.registered.wait(), 30)
            await node.apply(runtime_documents("v1beta1"))
            await _desired_until(twin, "model_version", "")
            await node.hub.set_desired(f"default/{RUNTIME_DEVICE}", {"model_version": "1.1.0"})
            await _desired_until(twin, "model_version", "1.1.0")
            await asyncio.wait_for(
                twin.report({"model_version": "1.1.0", "model_status": "serving"}), 30
            )
            # Edgecore turns each twin of a ReportDeviceStatus into its own twin update, and
            # each reaches the cloud in its own edge_updated, in no fixed order (server.go).
            await _reported(
                node, f"default/{RUNTIME_DEVICE}", model_version="1.1.0", model_status="serving"
            )
        report = node.hub.reports[f"default/{RUNTIME_DEVICE}"]
    assert report.observed_desired["model_version"] == "1.1.0"  # edgecore's "expected"


async def test_dmi_devices_known_before_the_mapper_come_with_its_registration(broker, short_tmp):
    """The Device reached edgecore first: MapperRegister(withData) returns it."""
    documents = runtime_documents("v1beta1")
    for doc in documents:
        for prop in doc["spec"].get("properties", []) if doc["kind"] == "Device" else []:
            if prop["name"] == "model_version":
                prop["desired"]["value"] = "1.0.0"
    async with edge_node(short_tmp, CURRENT, broker.url) as node:
        await node.apply(documents)
        await node.hub.wait_for(lambda: not node.hub.pending)  # edgecore acked every resource
        mapper = _mapper(node, short_tmp)
        twin = mapper.follow("default", RUNTIME_DEVICE)
        async with running(mapper):
            await _desired_until(twin, "model_version", "1.0.0")
        assert mapper.registrations >= 1


async def test_dmi_a_change_made_while_edgecore_was_down_arrives_after_its_restart(
    broker, short_tmp
):
    """Edgecore restarts (SIGTERM, same database); the cloud's edit made meanwhile waits in the
    hub's queue and reaches the mapper once edgecore is back."""
    async with edge_node(short_tmp, CURRENT, broker.url) as node:
        await node.apply(runtime_documents("v1beta1"))
        mapper = _mapper(node, short_tmp, resync_s=0.5)
        twin = mapper.follow("default", RUNTIME_DEVICE)
        async with running(mapper):
            await _desired_until(twin, "model_version", "")
            assert node.edgecore is not None
            await node.edgecore.stop()
            await node.hub.set_desired(f"default/{RUNTIME_DEVICE}", {"model_version": "1.2.0"})
            await node.start_edgecore()
            await _desired_until(twin, "model_version", "1.2.0", timeout_s=60)
            await asyncio.wait_for(twin.report({"model_version": "1.2.0"}), 30)
            await _reported(node, f"default/{RUNTIME_DEVICE}", model_version="1.2.0")
        # Edgecore keeps registered mappers in its database (dmiworker.go, mappers from the db)
        # and dials the mapper itself after a restart; registering again is the mapper's choice.
        assert mapper.registrations >= 1


@contextlib.asynccontextmanager
async def mqtt_twin(broker_url: str, name: str, unique: str) -> AsyncIterator[TwinClient]:
    """A TwinClient (KubeEdge 1.4 layout) on its own transport, messages routed to it."""
    transport: MqttTransport | None = None

    def publish(topic: str, payload: bytes) -> asyncio.Future[None]:
        assert transport is not None
        return transport.publish_nowait(topic, payload)

    client = TwinClient(DeviceRef(name), topics=TwinTopics(Layout.V1_4), publish=publish)
    transport = MqttTransport(
        broker_url,
        client_id=f"twin-{unique}",
        clean_start=True,
        session_expiry_s=0,
        subscriptions=client.subscriptions,
    )

    async def route() -> None:
        async for message in transport.messages():
            client.handle(message.topic, message.payload)

    async with transport, asyncio.TaskGroup() as tasks:
        await transport.wait_connected(10)
        router = tasks.create_task(route())
        try:
            yield client
        finally:
            router.cancel()


async def _next_desired(stream: AsyncIterator[dict[str, str]], key: str, value: str) -> None:
    async with asyncio.timeout(30):
        while (await anext(stream)).get(key) != value:
            pass


async def test_mqtt_1_4_get_cloud_change_and_report_through_real_edgecore(
    broker, short_tmp, unique
):
    """KubeEdge 1.4: the cloud's membership carries the twins; twin/get answers them; an edit
    comes as cloud_updated over the websocket and leaves edgecore as an MQTT delta; a report
    goes back to the cloud as twin/edge_updated."""
    async with edge_node(short_tmp, LEGACY, broker.url) as node:
        await node.apply(runtime_documents("v1alpha2"))
        async with mqtt_twin(broker.url, RUNTIME_DEVICE, unique) as client:
            await client.resync()  # the twins, without values: the Device's are empty
            desired = aiter(client.desired())
            await node.hub.set_desired(RUNTIME_DEVICE, {"model_version": "1.1.0"})
            await _next_desired(desired, "model_version", "1.1.0")
            await client.report({"model_version": "1.1.0", "model_status": "serving"})
            await _reported(node, RUNTIME_DEVICE, model_version="1.1.0", model_status="serving")


async def test_mqtt_1_4_a_twin_get_sent_before_edgecore_subscribed_is_asked_again(
    broker, short_tmp, unique
):
    """edgecore 1.4 subscribes with a clean session and publishes nothing when it starts: a
    twin/get sent while it is down is lost, so the client asks again until it answers."""
    async with edge_node(short_tmp, LEGACY, broker.url) as node:
        await node.apply(runtime_documents("v1alpha2"))
        await node.hub.set_desired(RUNTIME_DEVICE, {"model_version": "1.3.0"})
        async with mqtt_twin(broker.url, RUNTIME_DEVICE, f"probe-{unique}") as probe:
            await probe.resync()  # edgecore has subscribed
            async with asyncio.timeout(30):  # and has the value
                while (await probe.get())["model_version"].expected is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        assert node.edgecore is not None
        await node.edgecore.stop()
        async with mqtt_twin(broker.url, RUNTIME_DEVICE, unique) as client:
            resync = asyncio.create_task(client.resync(first_timeout_s=0.5, max_wait_s=2))
            await asyncio.sleep(2)
            assert not resync.done()  # nobody answered
            await node.start_edgecore()
            await asyncio.wait_for(resync, 30)
            await _next_desired(aiter(client.desired()), "model_version", "1.3.0")


async def test_dmi_a_camera_applied_in_the_cloud_is_served_with_no_device_file(
    broker, short_tmp, unique
):
    """KubeEdge 1.15+ tells a mapper its devices: the camera mapper starts with none, the cloud
    applies a camera (as kubectl apply would), edgecore hands it over and its desired
    capture_fps reaches the camera's control topic; removing it stops serving it."""
    from edgeinfer import camera as contract
    from mappers import CameraMapper, Connection, run_forever

    camera_docs = load_documents(
        [DEPLOY / "v1beta1" / "camera-model.yaml", DEPLOY / "v1beta1" / "camera-device.yaml"]
    )
    root = f"emotion-{unique}"
    async with edge_node(short_tmp, CURRENT, broker.url) as node:
        dmi = DmiMapper(
            name="camera-mapper",
            protocol="emotion-camera",
            socket=str(short_tmp / "cam.sock"),
            edgecore_socket=str(node.dmi_directory),
            resync_s=0.5,
        )
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
            await node.apply(camera_docs)
            await node.hub.set_desired("default/cam-00", {"capture_fps": "2"})
            async with asyncio.timeout(30):
                async for message in watcher.messages():
                    control = contract.CameraControl.decode(message.payload)
                    if control.capture_fps == 2:
                        break
            await node.hub.delete_device("default/cam-00")
            async with asyncio.timeout(30):
                while "cam-00" in mapper.served:  # noqa: ASYNC110 - edgecore's RemoveDevice
                    await asyncio.sleep(0.1)
            session.cancel()
            dmi_task.cancel()
