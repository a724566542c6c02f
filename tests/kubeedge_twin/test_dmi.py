"""DMI over real gRPC on Unix sockets: a mapper and edgecore's side as the stand-in plays it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from kubeedge_sim.dmi_edgecore import DmiEdgecore, RateLimiter
from kubeedge_sim.engine import Outbox, TwinEngine
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceDefinition, Layout
from kubeedge_twin.dmi.mapper import DmiMapper, DmiTwin, edgecore_socket_path
from tests.support.paths import REPO
from tests.support.until import until

KUBEEDGE_FILES = REPO / "third_party" / "kubeedge"  # vendored by tag


class Edgecore:
    """The stand-in's engine and DMI server; MQTT output collected instead of published."""

    def __init__(self, directory: Path, limiter: RateLimiter | None = None) -> None:
        self.store = TwinStore()
        self.engine = TwinEngine(self.store, layout=Layout.V1_17, node="node-a")
        self.published: Outbox = []
        self.dmi = DmiEdgecore(
            self.engine, str(directory / "dmi.sock"), self.published.extend, limiter
        )

    def add(
        self,
        name: str,
        protocol: str = "edgeinfer",
        config_data: dict[str, object] | None = None,
        **desired: str,
    ) -> None:
        definition = DeviceDefinition(name, desired={k: (v, "string") for k, v in desired.items()})
        self.engine.add_device(definition)
        self.dmi.add_device(f"default/{name}", name, "default", protocol, desired, config_data)

    def set_desired(self, name: str, **values: str) -> None:
        self.dmi.set_desired(f"default/{name}", values)

    def reported(self, name: str) -> dict[str, str]:
        device = self.engine.device(f"default/{name}")
        assert device is not None
        return {n: t.actual.value for n, t in device.twins.items() if t.actual and t.actual.value}


@contextlib.asynccontextmanager
async def running(mapper: DmiMapper) -> AsyncIterator[DmiMapper]:
    task = asyncio.create_task(mapper.run())
    try:
        yield mapper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _next(twin: DmiTwin) -> dict[str, str]:
    async with asyncio.timeout(10):
        return await anext(aiter(twin.desired()))


def _mapper(directory: Path, **kw) -> DmiMapper:
    return DmiMapper(
        name="edgeinfer-mapper",
        protocol="edgeinfer",
        socket=str(directory / "mapper.sock"),
        edgecore_socket=str(directory),  # a directory: <dir>/dmi.sock, as edgecore 1.23
        resync_s=0.2,
        **kw,
    )


@pytest.fixture
def short_tmp() -> AsyncIterator[Path]:
    """Unix socket paths must stay under 108 bytes: pytest's tmp_path can be longer."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dmi-") as directory:
        yield Path(directory)


async def test_registration_with_data_then_desired_updates_and_reports(short_tmp):
    edgecore = Edgecore(short_tmp)
    edgecore.add("rt", model_version="1.0.0", model_uri="file:///m")
    edgecore.add("other-rt", model_version="9.9.9")  # same protocol, not followed here
    edgecore.add("camera", protocol="emotion-camera", capture_fps="5")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twin = mapper.follow("default", "rt")
    try:
        async with running(mapper):
            first = await _next(twin)
            edgecore.set_desired("rt", model_version="1.1.0")
            second = await _next(twin)
            before_reports = [topic for topic, _ in edgecore.published]
            await twin.report({"model_version": "1.1.0", "model_status": "serving"})
            await twin.report_state("online")
            reported = edgecore.reported("rt")
    finally:
        edgecore.dmi.stop()
    assert first == {"model_version": "1.0.0", "model_uri": "file:///m"}
    assert second == {"model_version": "1.1.0", "model_uri": "file:///m"}
    assert reported == {"model_version": "1.1.0", "model_status": "serving"}
    assert edgecore.dmi.mappers() == {"edgeinfer": str(short_tmp / "mapper.sock").encode()}
    # (a call to the mapper is recorded when it returns: after the report it led to, at times)
    assert edgecore.dmi.calls[0] == "MapperRegister"
    assert edgecore.dmi.calls.count("UpdateDevice") == 1
    # Cloud-side changes went out over DMI, never as MQTT deltas (the stand-in's engine would
    # have made some); the report made edgecore's MQTT documents.
    assert not any(t.endswith("/twin/update/delta") for t in before_reports), before_reports
    topics = [topic for topic, _ in edgecore.published]
    assert any(t.endswith("/twin/update/document") for t in topics)


async def test_fifty_devices_report_within_the_rate_limit_and_nothing_is_lost(short_tmp):
    """A small limiter (burst 10, 20 calls/s) stands for edgecore's (burst 100, 1/s): reports
    are coalesced per device and retried after "too many request"; every latest value lands."""
    edgecore = Edgecore(short_tmp, RateLimiter(rate=20.0, burst=10))
    names = [f"cam-{i:02d}" for i in range(50)]
    for name in names:
        edgecore.add(name, protocol="edgeinfer", capture_fps="5")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twins = [mapper.follow("default", name) for name in names]
    try:
        async with running(mapper):
            await asyncio.wait_for(mapper.registered.wait(), 10)
            for round_ in range(5):  # five values each, faster than the limit allows
                for twin in twins:
                    twin.report({"capture_fps": str(round_), "last_emotion": f"e{round_}"})
                await asyncio.sleep(0.01)
            done = asyncio.gather(*(t.report({"enabled": "true"}) for t in twins))
            await asyncio.wait_for(done, 60)
    finally:
        edgecore.dmi.stop()
    for name in names:
        assert edgecore.reported(name) == {
            "capture_fps": "4",
            "last_emotion": "e4",
            "enabled": "true",
        }, name
    assert edgecore.dmi.refused > 0  # the limit was really hit
    assert mapper.rate_limited > 0
    assert mapper.reports < 5 * len(names)  # coalesced


async def test_the_mapper_registers_again_when_edgecore_restarts(short_tmp):
    edgecore = Edgecore(short_tmp)
    edgecore.add("rt", model_version="1.0.0")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twin = mapper.follow("default", "rt")
    try:
        async with running(mapper):
            assert (await _next(twin))["model_version"] == "1.0.0"
            edgecore.dmi.stop()
            # edgecore restarts with its cache: the desired value changed while it was away.
            restarted = DmiEdgecore(edgecore.engine, edgecore.dmi.socket, edgecore.published.extend)
            restarted.add_device("default/rt", "rt", "default", "edgeinfer", {})
            restarted.set_desired("default/rt", {"model_version": "1.2.0"})
            edgecore.dmi = restarted
            restarted.start()
            assert (await _next(twin))["model_version"] == "1.2.0"  # from MapperRegister
            await twin.report({"model_version": "1.2.0"})
    finally:
        edgecore.dmi.stop()
    assert mapper.registrations == 2
    assert edgecore.reported("rt") == {"model_version": "1.2.0"}


def test_edgecore_socket_is_a_file_or_a_directory_holding_dmi_sock(tmp_path):
    assert edgecore_socket_path(str(tmp_path)) == str(tmp_path / "dmi.sock")
    assert edgecore_socket_path(str(tmp_path / "edgecore.sock")) == str(tmp_path / "edgecore.sock")
    assert edgecore_socket_path("") == "/etc/kubeedge/dmi.sock"


def _descriptor(proto: Path, directory: Path) -> descriptor_pb2.FileDescriptorProto:
    out = directory / f"{proto.parent.name}.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto.parent}",
            f"--descriptor_set_out={out}",
            proto.name,
        ],
        check=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return files.file[0]


# Every RPC and message field the mapper and the stand-in use.
USED_RPCS = {
    "DeviceManagerService": {"MapperRegister", "ReportDeviceStatus", "ReportDeviceStates"},
    "DeviceMapperService": {
        "RegisterDevice",
        "UpdateDevice",
        "RemoveDevice",
        "CreateDeviceModel",
        "UpdateDeviceModel",
        "RemoveDeviceModel",
        "GetDevice",
    },
}
USED_FIELDS = {
    "MapperRegisterRequest": {"withData", "mapper"},
    "MapperRegisterResponse": {"deviceList", "modelList"},
    "MapperInfo": {"name", "version", "api_version", "protocol", "address", "state"},
    "Device": {"name", "namespace", "spec"},
    "DeviceSpec": {"deviceModelReference", "protocol", "properties"},
    "DeviceProperty": {"name", "desired"},
    "ProtocolConfig": {"protocolName"},
    "TwinProperty": {"value"},
    "DeviceModel": {"name", "namespace"},
    "ReportDeviceStatusRequest": {"deviceName", "deviceNamespace", "reportedDevice"},
    "DeviceStatus": {"twins"},
    "Twin": {"propertyName", "observedDesired", "reported"},
    "ReportDeviceStatesRequest": {"deviceName", "deviceNamespace", "state"},
    "RegisterDeviceRequest": {"device"},
    "RegisterDeviceResponse": {"deviceName", "deviceNamespace"},
    "UpdateDeviceRequest": {"device"},
    "RemoveDeviceRequest": {"deviceName", "deviceNamespace"},
    "CreateDeviceModelRequest": {"model"},
    "CreateDeviceModelResponse": {"deviceModelName", "deviceModelNamespace"},
}


@pytest.mark.parametrize("tag", ["v1.17.0", "v1.23.1"])
def test_everything_used_exists_in_kubeedges_proto(tag, tmp_path):
    """Edgecore 1.17 must work too: nothing used may be newer than its proto (ReportDeviceStates
    is 1.18+: on 1.17 that call fails and the mapper goes on)."""
    proto = KUBEEDGE_FILES / tag / "api.proto"
    if not proto.is_file():
        pytest.fail(f"KubeEdge's proto {proto} not found (third_party/kubeedge)")
    file = _descriptor(proto, tmp_path)
    assert file.package == "v1beta1"
    services = {s.name: {m.name for m in s.method} for s in file.service}
    messages = {m.name: {f.name for f in m.field} for m in file.message_type}
    for service, rpcs in USED_RPCS.items():
        missing = rpcs - services[service]
        if tag == "v1.17.0":
            missing -= {"ReportDeviceStates"}
        assert not missing, (tag, service, missing)
    for message, fields in USED_FIELDS.items():
        if tag == "v1.17.0" and message == "ReportDeviceStatesRequest":
            continue
        assert fields <= messages[message], (tag, message, fields - messages[message])


def test_the_vendored_proto_is_kubeedges_v1_23_1_unchanged():
    vendored = REPO / "kubeedge_twin" / "dmi" / "v1beta1" / "api.proto"
    assert vendored.read_bytes() == (KUBEEDGE_FILES / "v1.23.1" / "api.proto").read_bytes()


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["1.4", "1.23"])
async def test_a_cloud_side_desired_change_is_an_mqtt_delta_only_on_1_4(
    mode, broker, unique, short_tmp
):
    """KubeEdge 1.4 sends a delta on MQTT; 1.15+ (the stand-in with DMI) sends none: the
    change goes to the Device's mapper over DMI (none registered here)."""
    from edge_runtime import MqttTransport
    from kubeedge_sim.standin import EdgecoreStandIn

    layout = Layout.V1_4 if mode == "1.4" else Layout.V1_17
    store = TwinStore()
    service = EdgecoreStandIn(
        broker.url,
        store,
        layout=layout,
        client_id=f"standin-{mode}-{unique}",
        dmi_socket=str(short_tmp / "dmi.sock") if mode == "1.23" else None,
    )
    name = f"dev-{unique}"
    listener = MqttTransport(
        broker.url, client_id=f"listen-{unique}", subscriptions=[("$hw/events/device/#", 1)]
    )
    service.start()
    try:
        service.add_devices(
            [DeviceDefinition(name, desired={"capture_fps": ("5", "string")}, protocol="cam")]
        )
        async with listener:
            await listener.wait_connected(10)
            device_id = name if layout is Layout.V1_4 else f"default/{name}"
            service.set_desired(device_id, {"capture_fps": "9"})
            topics = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.5):
                    async for message in listener.messages():
                        topics.append(message.topic)
    finally:
        service.stop()
        store.close()
    deltas = [t for t in topics if t.endswith("/twin/update/delta")]
    assert bool(deltas) is (mode == "1.4"), topics


async def test_config_data_arrives_as_edgecore_encodes_it(short_tmp):
    """configData goes through edgecore's JSON round trip: every number becomes a float32
    FloatValue (554 arrives as 554.0), strings StringValue, booleans BoolValue; a Device with
    a nested value fails ConvertDevice and reaches no mapper."""
    edgecore = Edgecore(short_tmp)
    edgecore.add(
        "cam",
        config_data={"host": "cam-7.local", "port": 554, "gain": 1.1, "hdr": True},
        capture_fps="5",
    )
    edgecore.add("broken", config_data={"nested": {"a": 1}}, capture_fps="5")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twin = mapper.follow("default", "cam")
    broken = mapper.follow("default", "broken")
    try:
        async with running(mapper):
            await _next(twin)
            config = twin.config()
            edgecore.set_desired("broken", capture_fps="9")  # its conversion fails again
            await asyncio.sleep(0.5)
    finally:
        edgecore.dmi.stop()
    assert config["host"] == "cam-7.local"
    assert config["port"] == 554.0
    assert config["gain"] == pytest.approx(1.1, rel=1e-6)  # float32, not 1.1 exactly
    assert config["gain"] != 1.1
    assert config["hdr"] is True
    assert broken.current() is None  # never delivered


async def test_values_edgecore_already_has_cost_no_call(short_tmp):
    """Edgecore takes about one DMI call a second for the whole node: reporting the same values
    again (a mapper's periodic resend) spends none of them."""
    edgecore = Edgecore(short_tmp)
    edgecore.add("cam-00", protocol="edgeinfer", capture_fps="5")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twin = mapper.follow("default", "cam-00")
    try:
        async with running(mapper):
            await asyncio.wait_for(mapper.registered.wait(), 10)
            await asyncio.wait_for(twin.report({"capture_fps": "5"}), 10)
            before = edgecore.dmi.calls.count("ReportDeviceStatus")
            for _ in range(5):
                await asyncio.wait_for(twin.report({"capture_fps": "5"}), 1)
            await asyncio.sleep(0.3)
            assert edgecore.dmi.calls.count("ReportDeviceStatus") == before
            await asyncio.wait_for(twin.report({"capture_fps": "2"}), 10)
            assert edgecore.dmi.calls.count("ReportDeviceStatus") == before + 1
    finally:
        edgecore.dmi.stop()
    assert edgecore.reported("cam-00") == {"capture_fps": "2"}


async def test_a_twin_the_cloud_set_goes_before_values_that_merely_changed(short_tmp):
    """With the limit spent, the camera whose desired capture_fps was applied reports first,
    ahead of the others' changing last_emotion (the cloud waits to see its edit applied)."""
    edgecore = Edgecore(short_tmp, RateLimiter(rate=2.0, burst=1))
    names = [f"cam-{i:02d}" for i in range(8)]
    for name in names:  # edgecore gives every property a desired field, empty unless set
        edgecore.add(name, protocol="edgeinfer", capture_fps="5", last_emotion="")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twins = {name: mapper.follow("default", name) for name in names}
    try:
        async with running(mapper):
            await until(lambda: all(t.current() is not None for t in twins.values()), 10)
            for twin in twins.values():  # every camera has news, ahead of the edit
                twin.report({"last_emotion": "happy"})
            edited = twins[names[-1]]  # last in turn order
            edited.report({"capture_fps": "1"})
            await asyncio.wait_for(edited.report({"capture_fps": "1"}), 10)
            landed = [n for n in names if edgecore.reported(n).get("last_emotion") == "happy"]
    finally:
        edgecore.dmi.stop()
    assert edgecore.reported(names[-1])["capture_fps"] == "1"
    assert len(landed) < len(names) - 1  # it did not wait for every other camera's turn


async def test_a_report_made_while_the_last_call_is_in_flight_is_still_settled(short_tmp):
    """Values reported during a call mark the device dirty again; the future handed out for
    them must be settled by the next call, not dropped (it once was: a caller hung)."""
    edgecore = Edgecore(short_tmp)
    edgecore.add("cam-00", protocol="edgeinfer", capture_fps="5")
    edgecore.dmi.start()
    mapper = _mapper(short_tmp)
    twin = mapper.follow("default", "cam-00")
    original = mapper._report
    later: list[asyncio.Future[None]] = []

    async def report_then_more(device):
        await original(device)
        if not later:  # new values arrive before the mapper settles this call's futures
            later.append(twin.report({"capture_fps": "2"}))

    mapper._report = report_then_more
    try:
        async with running(mapper):
            await asyncio.wait_for(mapper.registered.wait(), 10)
            first = twin.report({"capture_fps": "1"})
            await asyncio.wait_for(first, 10)
            await asyncio.wait_for(later[0], 10)
    finally:
        edgecore.dmi.stop()
    assert edgecore.reported("cam-00") == {"capture_fps": "2"}
