"""A KubeEdge DMI mapper (v1beta1): how desired twin values reach a device on KubeEdge 1.15+.

edgecore serves ``DeviceManagerService`` on its Unix socket; the mapper registers there
(``MapperRegister`` with ``withData``: the Devices of its protocol come back) and serves
``DeviceMapperService`` on its own socket, which edgecore dials for every ``RegisterDevice``,
``UpdateDevice`` and ``RemoveDevice`` (docs: ../../../shared/kubeedge/dmi/DMI.md, edgecore's
``server.go`` and ``client.go`` at v1.23.1). Desired values are
``device.spec.properties[i].desired.value`` in those calls; ``DmiTwin.desired()`` turns them into
the same stream of desired values that the MQTT ``TwinClient`` yields.

Reports go up with ``ReportDeviceStatus`` (every twin of a device in one call, ``observedDesired``
and ``reported`` both set: edgecore dereferences both) and ``ReportDeviceStates``. edgecore
limits all DMI calls of a node together to a burst of 100, then one a second, answering
"too many request" beyond: reports are coalesced per device (the latest value of each twin wins,
none is dropped) and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import wrappers_pb2
from grpc import aio

from kubeedge_twin.dmi.v1beta1 import api_pb2 as pb
from kubeedge_twin.dmi.v1beta1 import api_pb2_grpc as rpc
from kubeedge_twin.messages import check_value
from kubeedge_twin.topics import DeviceRef

_LOGGER = logging.getLogger(__name__)

API_VERSION = "v1beta1"
DEFAULT_EDGECORE_SOCKET = "/etc/kubeedge/dmi.sock"
RATE_LIMITED = "too many request"  # edgecore's words when its limiter refuses a call
_CALL_TIMEOUT_S = 10.0
_BACKOFF_MAX_S = 8.0
_MISSING_MAX_S = 10.0  # registering again while a followed Device is missing
_SWEEP_S = 30.0  # registering again for Devices nobody named (an adopting mapper)


def edgecore_socket_path(configured: str) -> str:
    """Edgecore's socket: a ``*.sock`` file (1.15-1.22) or a directory holding ``dmi.sock``."""
    path = Path(configured or DEFAULT_EDGECORE_SOCKET)
    return str(path / "dmi.sock") if path.is_dir() else str(path)


def desired_of(device: pb.Device) -> dict[str, str]:
    """A Device's desired values: ``spec.properties[i].desired.value`` by property name."""
    return {p.name: p.desired.value for p in device.spec.properties if p.HasField("desired")}


_WRAPPERS: tuple[type[Any], ...] = (
    wrappers_pb2.StringValue,
    wrappers_pb2.BoolValue,
    wrappers_pb2.FloatValue,
    wrappers_pb2.DoubleValue,
    wrappers_pb2.Int32Value,
    wrappers_pb2.Int64Value,
    wrappers_pb2.UInt32Value,
    wrappers_pb2.UInt64Value,
)


def config_of(device: pb.Device) -> dict[str, object]:
    """``spec.protocol.configData`` decoded from the ``Any`` wrappers edgecore packs.

    Numbers arrive as float32 ``FloatValue`` (edgecore's JSON round trip makes every number a
    float), so ``554`` comes back as ``554.0``; a value of another type is left out (logged).
    """
    values: dict[str, object] = {}
    for key, packed in device.spec.protocol.configData.data.items():
        for wrapper in _WRAPPERS:
            if packed.Is(wrapper.DESCRIPTOR):
                message = wrapper()
                packed.Unpack(message)
                values[key] = message.value
                break
        else:
            _LOGGER.warning(
                "configData %s of %s: unknown type %s", key, device.name, packed.type_url
            )
    return values


@dataclass
class _Device:
    """What the mapper knows of one followed device."""

    namespace: str
    name: str
    desired: dict[str, str] | None = None  # None until edgecore told us
    config: dict[str, object] = field(default_factory=dict)  # spec.protocol.configData
    reported: dict[str, str] = field(default_factory=dict)
    queue: asyncio.Queue[dict[str, str]] = field(default_factory=asyncio.Queue)
    dirty: bool = False  # reported values not yet sent
    urgent: bool = False  # among them, a twin the cloud sets (it waits to see it applied)
    state: str = ""  # a state not yet sent
    sent_state: str = ""  # the state edgecore last accepted


def _settled() -> asyncio.Future[None]:
    """A future already done: what edgecore has been told needs no call."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


class DmiTwin:
    """One device's twin over DMI: desired values in, reported values and state out.

    Made by ``DmiMapper.follow``; used like the MQTT ``TwinClient`` (``desired``, ``report``).
    """

    def __init__(self, mapper: DmiMapper, device: _Device) -> None:
        self._mapper = mapper
        self._device = device

    @property
    def device(self) -> DeviceRef:
        """The device."""
        return DeviceRef(self._device.name, self._device.namespace)

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        """Nothing to subscribe to: edgecore calls the mapper."""
        return []

    def handle(self, _topic: str, _payload: bytes) -> bool:
        """No MQTT message is a DMI twin's."""
        return False

    @property
    def bad_messages(self) -> int:
        """Malformed inbound twin messages (none over DMI: gRPC parses them)."""
        return 0

    @property
    def name(self) -> str:
        """The device's name."""
        return self._device.name

    @property
    def namespace(self) -> str:
        """The device's namespace."""
        return self._device.namespace

    async def desired(self) -> AsyncIterator[dict[str, str]]:
        """Every desired value of the device, each time one of them changes."""
        while True:
            yield await self._device.queue.get()

    def config(self) -> dict[str, object]:
        """The Device's ``spec.protocol.configData`` as edgecore gave it last."""
        return dict(self._device.config)

    def current(self) -> dict[str, str] | None:
        """The desired values edgecore gave last (``None`` before it gave any)."""
        return None if self._device.desired is None else dict(self._device.desired)

    def report(
        self, values: Mapping[str, str], types: Mapping[str, str] | None = None
    ) -> asyncio.Future[None]:
        """Report values; sent with the device's other twins in one coalesced call.

        The future completes when edgecore accepted a report holding these values. (``types``:
        a DMI twin carries none; the DeviceModel declares them.)

        Raises:
            TwinFormatError: if a value breaks KubeEdge's value pattern (edgecore's twin update
                would refuse it, telling the mapper nothing).
        """
        del types
        for value in values.values():
            check_value(value)
        device = self._device
        changed = {k: v for k, v in values.items() if device.reported.get(k) != v}
        if not changed and not device.dirty:  # edgecore has these already: no call spent
            return _settled()
        device.reported.update(changed)
        if changed:
            device.dirty = True
            # Edgecore takes about one call a second for the whole node: a twin the cloud set
            # goes before values that merely changed (a camera's last_emotion, every answer).
            # (Edgecore gives every property a desired field: a value says the cloud set it.)
            device.urgent = device.urgent or any((device.desired or {}).get(k) for k in changed)
        return self._mapper._schedule(device)

    def report_state(self, state: str) -> asyncio.Future[None]:
        """Report the device's state (``online``, ``offline``, ``ok``, ...; edgecore 1.18+)."""
        device = self._device
        if state == device.sent_state and not device.state:  # edgecore has it: no call spent
            return _settled()
        device.state = state
        return self._mapper._schedule(device)

    async def resync(self) -> None:
        """Nothing to ask: edgecore calls the mapper with every change.

        (The mapper registers again, and reports everything again, when edgecore restarts.)
        """


class DmiMapper:
    """Registers with edgecore, serves ``DeviceMapperService``, reports within the rate limit.

    Args:
        name: The mapper's name (MapperInfo.name).
        protocol: The protocol whose Devices this mapper serves (one mapper per protocol and
            node: a later registration with the same protocol replaces the earlier one).
        socket: Where this mapper serves ``DeviceMapperService`` (a Unix socket path; edgecore
            must be able to reach it: share the directory with the host in a container).
        edgecore_socket: edgecore's socket, a file or a directory holding ``dmi.sock``.
        version: MapperInfo.version.
        resync_s: How often to check that edgecore's socket is still the one registered with
            (edgecore restarted: register again) and to resend reports.
        report_only: Neither serve nor register: only report the followed Devices' twins and
            states, for Devices whose protocol another mapper owns (edgecore takes reports
            from any client of its socket: ``ReportDeviceStatus`` in edge/pkg/devicetwin/
            dmiserver/server.go checks no caller). No desired values come; the reports
            share edgecore's one rate limit with that mapper.
    """

    def __init__(
        self,
        *,
        name: str,
        protocol: str,
        socket: str = "",
        edgecore_socket: str = DEFAULT_EDGECORE_SOCKET,
        version: str = "1.0",
        resync_s: float = 1.0,
        report_only: bool = False,
    ) -> None:
        if not socket and not report_only:
            raise ValueError("a DMI mapper that registers needs its own socket")
        self._report_only = report_only
        self._name = name
        self._protocol = protocol
        self._socket = socket
        self._edgecore = edgecore_socket
        self._version = version
        self._resync_s = resync_s
        self._devices: dict[tuple[str, str], _Device] = {}
        self._ignored: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._pending: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._turn = 0  # where the next round of reports starts: every device gets its turn
        # Called with a Device of this protocol that is not followed yet; following it from
        # there (True) serves it at once, as edgecore 1.15+ tells mappers their devices.
        self.on_new_device: Callable[[pb.Device], bool] | None = None
        self.on_removed_device: Callable[[str, str], None] | None = None
        self.registered = asyncio.Event()
        self._registered_identity: tuple[int, int] | None = None  # edgecore's socket, last time
        self.registrations = 0
        self.rate_limited = 0  # calls edgecore refused with "too many request"
        self.reports = 0  # ReportDeviceStatus/States calls edgecore accepted

    def follow(self, namespace: str, name: str) -> DmiTwin:
        """The twin of one Device of this mapper's protocol (others are ignored, logged once)."""
        device = self._devices.setdefault((namespace, name), _Device(namespace, name))
        return DmiTwin(self, device)

    def unfollow(self, namespace: str, name: str) -> None:
        """Stop following a Device (its reports not yet sent are dropped)."""
        self._devices.pop((namespace, name), None)
        future = self._pending.pop((namespace, name), None)
        if future is not None and not future.done():
            future.cancel()

    async def run(self) -> None:
        """Serve, register (again after an edgecore restart) and report, until cancelled."""
        if self._report_only:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch_loop(), name=f"dmi[{self._name}].watch")
                tg.create_task(self._report_loop(), name=f"dmi[{self._name}].report")
            return
        server = aio.server()
        rpc.add_DeviceMapperServiceServicer_to_server(_Servicer(self), server)
        Path(self._socket).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._socket)  # a stale socket of an earlier run
        server.add_insecure_port(f"unix:{self._socket}")
        await server.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._register_loop(), name=f"dmi[{self._name}].register")
                tg.create_task(self._report_loop(), name=f"dmi[{self._name}].report")
        finally:
            await server.stop(grace=1.0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket)

    # edgecore -> mapper

    def offer(self, device: pb.Device) -> None:
        """A Device from edgecore (RegisterDevice, UpdateDevice or the registration's list)."""
        key = (device.namespace or "default", device.name)
        known = self._devices.get(key)
        if known is None and self.on_new_device is not None and self.on_new_device(device):
            known = self._devices.get(key)
        if known is None:
            if key not in self._ignored:
                self._ignored.add(key)
                _LOGGER.info("mapper %s ignores device %s/%s (not followed here)", self._name, *key)
            return
        known.config = config_of(device)
        desired = desired_of(device)
        if desired != known.desired:
            known.desired = desired
            known.queue.put_nowait(dict(desired))
            if known.reported:  # observedDesired changed: report it with the values
                known.dirty = True
                self._wake.set()

    def removed(self, namespace: str, name: str) -> None:
        """Edgecore removed a Device (RemoveDevice)."""
        _LOGGER.info("mapper %s: device %s/%s removed", self._name, namespace or "default", name)
        if self.on_removed_device is not None:
            self.on_removed_device(namespace or "default", name)

    # registration

    def _edgecore_path(self) -> str:
        return edgecore_socket_path(self._edgecore)

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._edgecore_path())
        except OSError:
            return None
        return stat.st_ino, stat.st_ctime_ns

    def _missing(self) -> list[str]:
        return [f"{d.namespace}/{d.name}" for d in self._devices.values() if d.desired is None]

    async def _register_loop(self) -> None:
        registered_with: tuple[int, int] | None = None
        delay = self._resync_s
        # Edgecore drops a Device whose RegisterDevice fails (its model not yet in its cache:
        # cloudcore sends both back to back, dmiworker.go dealMetaDeviceOperation) and never
        # retries; the Device stays in its cache, so registering again brings it. Asked again,
        # less and less often (up to every 10 s) while a followed Device is missing, and every
        # 30 s for good by a mapper that takes whatever Devices edgecore has (``on_new_device``).
        missing_wait = next_missing = 0.0
        while True:
            identity = self._identity()
            now = asyncio.get_running_loop().time()
            missing = self._missing()
            if (
                identity is not None
                and identity == registered_with
                and (missing or self.on_new_device is not None)
            ):
                if not missing_wait:
                    missing_wait, next_missing = 2 * self._resync_s, now + 2 * self._resync_s
                elif now >= next_missing:
                    if missing:
                        _LOGGER.info(
                            "mapper %s: %s not given yet; registering again",
                            self._name,
                            ", ".join(missing),
                        )
                    registered_with = None
                    # a followed Device missing: every 10 s at most; else a slow sweep
                    missing_wait = min(_MISSING_MAX_S if missing else _SWEEP_S, missing_wait * 2)
                    next_missing = now + missing_wait
            elif not missing:
                missing_wait = 0.0
            if identity is not None and identity != registered_with:
                try:
                    # A new edgecore (restarted: a new socket) may have lost what it was told;
                    # registering again with the same one (a sweep) must not re-send it all.
                    await self._register(everything_again=identity != self._registered_identity)
                except (aio.AioRpcError, OSError) as exc:
                    if identity != self._registered_identity:
                        self.registered.clear()  # a sweep that failed keeps reporting
                    _LOGGER.warning(
                        "mapper %s cannot register with edgecore at %s: %s",
                        self._name,
                        self._edgecore_path(),
                        _reason(exc),
                    )
                    await asyncio.sleep(delay)
                    delay = min(_BACKOFF_MAX_S, delay * 2)
                    continue
                registered_with, delay = identity, self._resync_s
                self._registered_identity = identity
            elif identity is None:
                self.registered.clear()
                registered_with = None
            await asyncio.sleep(self._resync_s)

    async def _watch_loop(self) -> None:
        """Report-only: report while edgecore's socket is there, everything again when it is new."""
        watched: tuple[int, int] | None = None
        while True:
            identity = self._identity()
            if identity is None:
                self.registered.clear()
            elif identity != watched:
                if watched is not None:
                    _LOGGER.info("mapper %s: edgecore restarted; reporting again", self._name)
                self.registered.set()
                self._report_everything_again()
            watched = identity
            await asyncio.sleep(self._resync_s)

    def _report_everything_again(self) -> None:
        for device in self._devices.values():
            if device.reported:
                device.dirty = True
            if device.sent_state and not device.state:
                device.state, device.sent_state = device.sent_state, ""
        self._wake.set()

    async def _register(self, *, everything_again: bool = True) -> None:
        request = pb.MapperRegisterRequest(
            withData=True,
            mapper=pb.MapperInfo(
                name=self._name,
                version=self._version,
                api_version=API_VERSION,
                protocol=self._protocol,
                address=self._socket.encode(),
                state="ok",
            ),
        )
        async with self._channel() as channel:
            stub = rpc.DeviceManagerServiceStub(channel)
            response = await stub.MapperRegister(request, timeout=_CALL_TIMEOUT_S)
        self.registrations += 1
        self.registered.set()
        _LOGGER.warning(
            "mapper %s registered with edgecore for protocol %s: %d devices",
            self._name,
            self._protocol,
            len(response.deviceList),
        )
        for device in response.deviceList:
            self.offer(device)
        if everything_again:
            self._report_everything_again()
        else:
            self._wake.set()

    def _channel(self) -> aio.Channel:
        # A connection per call, as edgecore makes its own calls; no retries hidden in gRPC.
        return aio.insecure_channel(
            f"unix:{self._edgecore_path()}", options=[("grpc.enable_retries", 0)]
        )

    # reporting

    def _schedule(self, device: _Device) -> asyncio.Future[None]:
        key = (device.namespace, device.name)
        future = self._pending.get(key)
        if future is None or future.done():
            future = self._pending[key] = asyncio.get_running_loop().create_future()
        self._wake.set()
        return future

    async def _report_loop(self) -> None:
        delay = 1.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._resync_s):
                    await self._wake.wait()
            self._wake.clear()
            if not self.registered.is_set():
                continue
            devices = list(self._devices.values())
            start = self._turn % max(1, len(devices))
            in_turn = devices[start:] + devices[:start]
            # Twins the cloud set first, then states, then values that merely changed.
            ranked = sorted(in_turn, key=lambda d: 0 if d.urgent else 1 if d.state else 2)
            for device in ranked:
                if not (device.dirty or device.state):
                    continue
                try:
                    await self._report(device)
                except (aio.AioRpcError, OSError) as exc:
                    reason = _reason(exc)
                    if RATE_LIMITED in reason:
                        self.rate_limited += 1
                        _LOGGER.debug("mapper %s: rate limited (%d)", self._name, self.rate_limited)
                    else:
                        _LOGGER.warning("mapper %s: report failed: %s", self._name, reason)
                    self._wake.set()  # what was not sent stays marked: retried below
                    await asyncio.sleep(delay)
                    delay = min(_BACKOFF_MAX_S, delay * 2)
                    break
                delay = 1.0
                _LOGGER.debug(
                    "mapper %s: reported %s/%s %s",
                    self._name,
                    device.namespace,
                    device.name,
                    device.reported,
                )
                self._turn = devices.index(device) + 1
                if not device.dirty:  # else values came during the call: the next one settles it
                    future = self._pending.pop((device.namespace, device.name), None)
                    if future is not None and not future.done():
                        future.set_result(None)

    async def _report(self, device: _Device) -> None:
        async with self._channel() as channel:
            stub = rpc.DeviceManagerServiceStub(channel)
            if device.dirty:
                # Values reported after this snapshot mark the device dirty again.
                urgent, device.dirty, device.urgent = device.urgent, False, False
                twins = [
                    pb.Twin(
                        propertyName=name,
                        observedDesired=pb.TwinProperty(value=(device.desired or {}).get(name, "")),
                        reported=pb.TwinProperty(value=value),
                    )
                    for name, value in sorted(device.reported.items())
                ]
                try:
                    await stub.ReportDeviceStatus(
                        pb.ReportDeviceStatusRequest(
                            deviceName=device.name,
                            deviceNamespace=device.namespace,
                            reportedDevice=pb.DeviceStatus(twins=twins),
                        ),
                        timeout=_CALL_TIMEOUT_S,
                    )
                except BaseException:
                    device.dirty, device.urgent = True, device.urgent or urgent
                    raise
                self.reports += 1
            if device.state:
                state = device.state
                try:
                    await stub.ReportDeviceStates(
                        pb.ReportDeviceStatesRequest(
                            deviceName=device.name, deviceNamespace=device.namespace, state=state
                        ),
                        timeout=_CALL_TIMEOUT_S,
                    )
                except aio.AioRpcError as exc:
                    if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    _LOGGER.info("edgecore has no ReportDeviceStates (it is 1.18+): not sent")
                else:
                    self.reports += 1
                device.sent_state = state
                if device.state == state:
                    device.state = ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)


class _Servicer(rpc.DeviceMapperServiceServicer):  # type: ignore[misc] # generated, untyped
    """``DeviceMapperService``: what edgecore calls on this mapper."""

    def __init__(self, mapper: DmiMapper) -> None:
        self._mapper = mapper

    async def RegisterDevice(
        self, request: pb.RegisterDeviceRequest, _context: Any
    ) -> pb.RegisterDeviceResponse:
        self._mapper.offer(request.device)
        return pb.RegisterDeviceResponse(
            deviceName=request.device.name, deviceNamespace=request.device.namespace
        )

    async def UpdateDevice(
        self, request: pb.UpdateDeviceRequest, _context: Any
    ) -> pb.UpdateDeviceResponse:
        self._mapper.offer(request.device)
        return pb.UpdateDeviceResponse()

    async def RemoveDevice(
        self, request: pb.RemoveDeviceRequest, _context: Any
    ) -> pb.RemoveDeviceResponse:
        self._mapper.removed(request.deviceNamespace, request.deviceName)
        return pb.RemoveDeviceResponse()

    async def CreateDeviceModel(
        self, request: pb.CreateDeviceModelRequest, _context: Any
    ) -> pb.CreateDeviceModelResponse:
        return pb.CreateDeviceModelResponse(
            deviceModelName=request.model.name, deviceModelNamespace=request.model.namespace
        )

    async def UpdateDeviceModel(
        self, _request: pb.UpdateDeviceModelRequest, _context: Any
    ) -> pb.UpdateDeviceModelResponse:
        return pb.UpdateDeviceModelResponse()

    async def RemoveDeviceModel(
        self, _request: pb.RemoveDeviceModelRequest, _context: Any
    ) -> pb.RemoveDeviceModelResponse:
        return pb.RemoveDeviceModelResponse()

    async def GetDevice(self, request: pb.GetDeviceRequest, context: Any) -> pb.GetDeviceResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "edgecore never calls GetDevice")
        return pb.GetDeviceResponse()
