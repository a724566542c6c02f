"""What only the real edgecore is asked here (the stand-in does not play it): a restart with a
cloud edit waiting in the hub's queue, and a Device deleted in the cloud.

The scenarios both play are in test_conformance.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_runtime import MqttTransport
from edgeinfer import camera as contract
from kubeedge_twin import Layout, TwinTopics
from kubeedge_twin.dmi.mapper import DmiMapper
from mappers import CameraMapper, Connection, run_forever
from tests.kubeedge_sim.sides import (
    RUNTIME,
    RealSide,
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
from tests.support.kubeedge import socket_directory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes: pytest's tmp_path can be longer."""
    with socket_directory() as directory:
        yield directory


async def test_dmi_a_change_made_while_edgecore_was_down_arrives_after_its_restart(
    broker, short_tmp, unique
):
    """Edgecore restarts (SIGTERM, same database); the cloud's edit made meanwhile waits in the
    hub's queue and reaches the mapper once edgecore is back."""
    async with kubeedge("real", True, broker.url, short_tmp, unique) as side:
        assert isinstance(side, RealSide)
        await side.apply(runtime_documents("v1beta1", model_version="1.0.0"))
        mapper = runtime_mapper(side, short_tmp)
        twin = mapper.follow("default", RUNTIME)
        async with running(mapper):
            await desired_until(twin, "model_version", "1.0.0")
            await side.stop_edgecore()
            await side.set_desired(f"default/{RUNTIME}", {"model_version": "1.2.0"})
            # deviceUpdated sends the DeviceModel and the Device, both queued for the node
            assert side.node.hub.pending == 2
            await side.start_edgecore()
            await desired_until(twin, "model_version", "1.2.0")
            await asyncio.wait_for(twin.report({"model_version": "1.2.0"}), 30)
            await reported_until(side, f"default/{RUNTIME}", model_version="1.2.0")
        # Edgecore keeps registered mappers in its database (dmiworker.go, mappers from the db)
        # and dials the mapper itself after a restart; registering again is the mapper's choice.
        assert mapper.registrations >= 1


async def test_dmi_a_camera_deleted_in_the_cloud_is_no_longer_served(broker, short_tmp, unique):
    """The cloud deletes a camera's Device: edgecore calls RemoveDevice and the camera mapper
    stops serving it (the stand-in plays no deletion)."""
    root = f"emotion-{unique}"
    async with kubeedge("real", True, broker.url, short_tmp, unique) as side:
        assert isinstance(side, RealSide)
        dmi = DmiMapper(
            name="camera-mapper",
            protocol="emotion-camera",
            socket=str(short_tmp / "cam.sock"),
            edgecore_socket=str(side.dmi_directory),
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
            await side.apply(documents("v1beta1", "camera-model.yaml", "camera-device.yaml"))
            await until(lambda: "cam-00" in mapper.served)
            await side.node.hub.delete_device("default/cam-00")
            await until(lambda: "cam-00" not in mapper.served)
            session.cancel()
            dmi_task.cancel()


async def test_mqtt_1_4_a_runtime_that_reached_the_broker_first_reports_once_edgecore_is_up(
    broker, registry, short_tmp, unique
):
    """A node's reboot can bring the runtime to mosquitto before edgecore v1.4.0 subscribes: its
    first twin/get and report are lost. It asks again until edgecore answers, then reports, so
    the cloud learns which version it serves without any cloud change."""
    from tests.support.runtime import make_settings, running_runtime

    settings = make_settings(
        broker.url,
        registry,
        unique,
        **{
            "twin.enabled": True,
            "twin.layout": "1.4",
            "twin.device": RUNTIME,
            "twin.cache_dir": str(short_tmp / "cache"),
        },
    )
    async with kubeedge("real", False, broker.url, short_tmp, unique) as side:
        assert isinstance(side, RealSide)
        await side.apply(runtime_documents("v1alpha2"))
        async with mqtt_twin(broker.url, RUNTIME, f"probe-{unique}") as probe:
            await probe.resync()  # edgecore has the Device (its membership is sent only once)
        await side.stop_edgecore()
        async with running_runtime(settings):
            await asyncio.sleep(2)  # its get and report went nowhere
            assert side.reported(RUNTIME) == {}
            await side.start_edgecore()
            await reported_until(side, RUNTIME, model_version="1.0.0", model_status="serving")
