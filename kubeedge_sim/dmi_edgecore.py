"""The DMI side of the edgecore stand-in: what edgecore 1.15-1.23 does, and never more.

Followed from edgecore's own code at v1.23.1 (../../shared/kubeedge/dmi/v1.23.1/edgecore):
``server.go`` (``DeviceManagerService`` on a Unix socket; one limiter for every RPC,
``rate.NewLimiter(rate.Every(1000*time.Millisecond), 100)``, refusing with "... too many
request ..."; ``MapperRegister`` refuses an empty protocol, stores one mapper per protocol and
with ``withData`` answers the cached Devices of that protocol; ``ReportDeviceStatus`` turns each
twin into the internal update an MQTT ``twin/update`` makes, ``expected`` = observedDesired and
``actual`` = reported) and ``client.go`` (a new connection to the mapper's socket for every
call, 10 s timeout; ``RegisterDevice`` for a new Device, ``UpdateDevice`` with the whole Device
for a changed one). Desired values never go out as MQTT deltas from the cloud side.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, wrappers_pb2

from kubeedge_sim.engine import Outbox, TwinEngine
from kubeedge_twin.dmi.v1beta1 import api_pb2 as pb
from kubeedge_twin.dmi.v1beta1 import api_pb2_grpc as rpc
from kubeedge_twin.messages import now_ms

_LOGGER = logging.getLogger(__name__)
_CALL_TIMEOUT_S = 10.0  # client.go: context.WithTimeout(..., 10*time.Second)


def config_value(value: object) -> any_pb2.Any:
    """One configData value as ``ConvertDevice`` makes it (util.go ``dataToAny`` at v1.23.1).

    The Device reaches edgecore as JSON decoded into Go's ``map[string]interface{}``, so every
    number is a float64 by then: integers too become ``FloatValue`` (float32, so precision
    beyond 2**24 is lost). Strings become ``StringValue``, booleans ``BoolValue``; anything else
    (null, lists, maps) fails the conversion.

    Raises:
        ValueError: for a value ``dataToAny`` refuses.
    """
    wrapped = any_pb2.Any()
    if isinstance(value, str):
        wrapped.Pack(wrappers_pb2.StringValue(value=value))
    elif isinstance(value, bool):
        wrapped.Pack(wrappers_pb2.BoolValue(value=value))
    elif isinstance(value, int | float):
        wrapped.Pack(wrappers_pb2.FloatValue(value=float(value)))
    else:
        raise ValueError(f"unsupported configData value {value!r}")  # noqa: TRY004 - edgecore's error
    return wrapped


class RateLimiter:
    """golang.org/x/time/rate's token bucket, ``Allow`` only: ``burst`` tokens, ``rate`` a second.

    Args:
        rate: Tokens added per second (edgecore: 1).
        burst: Bucket size, full at start (edgecore: 100).
        clock: Monotonic seconds (tests inject one).
    """

    def __init__(
        self, rate: float = 1.0, burst: int = 100, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Take a token if there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(slots=True)
class DmiDevice:
    """A Device as edgecore's DMI cache holds it.

    Identity, protocol and the desired values of its spec (``spec.properties[].desired.value``;
    the edge twin's expected values play no part: cloudcore 1.15+ no longer syncs them, DMI.md
    section 1).
    """

    name: str
    namespace: str
    protocol: str
    desired: dict[str, str]
    config_data: dict[str, object]
    model: str = ""


class DmiEdgecore:
    """edgecore's ``DeviceManagerService`` and its calls to mappers, over Unix sockets.

    Args:
        engine: The stand-in's twin engine (device twins, reported values, documents).
        socket: Where to serve (edgecore's ``dmi.sock``).
        publish: Sends the engine's MQTT outbox (results, documents) as edgecore does.
        limiter: edgecore's rate limiter (a fresh one by default).
    """

    def __init__(
        self,
        engine: TwinEngine,
        socket: str,
        publish: Callable[[Outbox], None],
        limiter: RateLimiter | None = None,
    ) -> None:
        self._engine = engine
        self._socket = socket
        self._publish = publish
        self._limiter = limiter or RateLimiter()
        self._devices: dict[str, DmiDevice] = {}  # by twin device id
        self._mappers: dict[str, bytes] = {}  # protocol -> the mapper's socket address
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        # edgecore calls mappers from its own goroutines; one thread keeps them in order.
        self._outgoing = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmi-call")
        self.refused = 0  # calls the limiter refused
        self.calls: list[str] = []  # RPC names served and made, in order (for tests)

    @property
    def socket(self) -> str:
        """The socket edgecore serves on."""
        return self._socket

    def start(self) -> None:
        """Serve ``DeviceManagerService`` (a stale socket file is replaced, as edgecore does)."""
        if os.path.exists(self._socket):
            os.unlink(self._socket)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        rpc.add_DeviceManagerServiceServicer_to_server(_Servicer(self), server)
        server.add_insecure_port(f"unix:{self._socket}")
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving and remove the socket (edgecore stopping)."""
        self._outgoing.shutdown(wait=True)
        if self._server is not None:
            self._server.stop(grace=0.5).wait()
            self._server = None
        if os.path.exists(self._socket):
            os.unlink(self._socket)

    # the cloud side: Devices added and changed

    def add_device(
        self,
        device_id: str,
        name: str,
        namespace: str,
        protocol: str,
        desired: Mapping[str, str],
        config_data: Mapping[str, object] | None = None,
        *,
        model: str = "",
    ) -> None:
        """A Device bound to this node: ``RegisterDevice`` to its protocol's mapper, if any."""
        with self._lock:
            self._devices[device_id] = DmiDevice(
                name,
                namespace or "default",
                protocol,
                dict(desired),
                dict(config_data or {}),
                model,
            )
        self._call_mapper(device_id, "RegisterDevice")

    def set_desired(self, device_id: str, values: Mapping[str, str]) -> None:
        """The cloud changed a Device's desired values: ``UpdateDevice`` with the whole Device.

        Raises:
            KeyError: if the device is unknown.
        """
        with self._lock:
            self._devices[device_id].desired.update(values)
        self._call_mapper(device_id, "UpdateDevice")

    def pb_device(self, device_id: str) -> pb.Device | None:
        """The Device as ``ConvertDevice`` gives it to mappers: desired values in its properties."""
        with self._lock:
            known = self._devices.get(device_id)
            if known is None:
                return None
            desired = dict(known.desired)
            config_data = dict(known.config_data)
        properties = [
            pb.DeviceProperty(name=name, desired=pb.TwinProperty(value=value))
            for name, value in sorted(desired.items())
        ]
        protocol = pb.ProtocolConfig(protocolName=known.protocol)
        for key, value in config_data.items():
            protocol.configData.data[key].CopyFrom(config_value(value))
        return pb.Device(
            name=known.name,
            namespace=known.namespace,
            spec=pb.DeviceSpec(
                deviceModelReference=known.model, protocol=protocol, properties=properties
            ),
        )

    def device_status(self, device_id: str) -> dict[str, Any] | None:
        """The Device's ``DeviceStatus`` object as cloudcore 1.23 writes it from edge reports.

        ``reported`` and ``observedDesired`` of the properties the Device's spec names (others
        are not written), its state and last online time (DMI.md section 5).
        """
        with self._lock:
            known = self._devices.get(device_id)
            names = sorted(known.desired) if known is not None else []
        stored = self._engine.device(device_id)
        if known is None or stored is None:
            return None
        twins = []
        for name in names:
            twin = stored.twins.get(name)
            if twin is None or twin.actual is None:
                continue
            twins.append(
                {
                    "propertyName": name,
                    "reported": {"value": twin.actual.value or ""},
                    "observedDesired": {
                        "value": (twin.expected.value or "") if twin.expected else ""
                    },
                }
            )
        status: dict[str, Any] = {"twins": twins}
        if stored.state and stored.state != "unknown":
            status["state"] = stored.state
        if stored.last_online:
            status["lastOnlineTime"] = stored.last_online
        return {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceStatus",
            "metadata": {"name": known.name, "namespace": known.namespace},
            "spec": {},
            "status": status,
        }

    def _call_mapper(self, device_id: str, method: str) -> None:
        self._outgoing.submit(self._call_mapper_now, device_id, method).add_done_callback(
            _log_failure
        )

    def _call_mapper_now(self, device_id: str, method: str) -> None:
        try:
            device = self.pb_device(device_id)
        except ValueError as exc:  # ConvertDevice failed: edgecore logs it and calls nobody
            _LOGGER.error("fail to convert device %s with err: %s", device_id, exc)  # noqa: TRY400
            return
        if device is None:
            return
        with self._lock:
            address = self._mappers.get(device.spec.protocol.protocolName)
        if address is None:
            _LOGGER.info("no mapper for protocol %s yet", device.spec.protocol.protocolName)
            return
        # client.go: a new connection for every call, closed afterwards.
        try:
            with grpc.insecure_channel(f"unix:{address.decode()}") as channel:
                stub = rpc.DeviceMapperServiceStub(channel)
                if method == "RegisterDevice":
                    stub.RegisterDevice(
                        pb.RegisterDeviceRequest(device=device), timeout=_CALL_TIMEOUT_S
                    )
                else:
                    stub.UpdateDevice(
                        pb.UpdateDeviceRequest(device=device), timeout=_CALL_TIMEOUT_S
                    )
            self.calls.append(method)
            _LOGGER.info(
                "DMI %s %s -> mapper of %s", method, device_id, device.spec.protocol.protocolName
            )
        except grpc.RpcError as exc:
            _LOGGER.warning("%s of %s failed: %s", method, device_id, exc)

    # DeviceManagerService

    def mapper_register(self, request: pb.MapperRegisterRequest) -> pb.MapperRegisterResponse:
        """server.go's MapperRegister."""
        self.calls.append("MapperRegister")
        if not request.mapper.protocol:
            raise ValueError(
                f"fail to register mapper {request.mapper.name} because the protocol is nil"
            )
        _LOGGER.info(
            "DMI MapperRegister: %s for protocol %s at %s",
            request.mapper.name,
            request.mapper.protocol,
            request.mapper.address.decode(errors="replace"),
        )
        with self._lock:
            self._mappers[request.mapper.protocol] = request.mapper.address
            ids = [i for i, d in self._devices.items() if d.protocol == request.mapper.protocol]
        if not request.withData:
            return pb.MapperRegisterResponse()
        devices = []
        for device_id in ids:
            try:
                device = self.pb_device(device_id)
            except ValueError as exc:  # server.go: logged, the device left out
                _LOGGER.error("fail to convert device %s with err: %s", device_id, exc)  # noqa: TRY400
                continue
            if device is not None:
                devices.append(device)
        models = [
            pb.DeviceModel(name=d.spec.deviceModelReference, namespace=d.namespace) for d in devices
        ]
        return pb.MapperRegisterResponse(deviceList=devices, modelList=models)

    def report_status(self, request: pb.ReportDeviceStatusRequest) -> None:
        """server.go's ReportDeviceStatus: each twin as an MQTT ``twin/update`` would be."""
        self.calls.append("ReportDeviceStatus")
        if not request.HasField("reportedDevice") or not request.reportedDevice.twins:
            raise ValueError("ReportDeviceStatusRequest does not have twin data")
        device_id = self._device_id(request.deviceNamespace, request.deviceName)
        for twin in request.reportedDevice.twins:
            # edgecore dereferences both without a check: a missing one crashes it.
            if not twin.HasField("observedDesired") or not twin.HasField("reported"):
                raise ValueError(f"twin {twin.propertyName} lacks observedDesired or reported")
            update = {
                "event_id": "",
                "timestamp": now_ms(),
                "twin": {
                    twin.propertyName: {
                        "expected": {"value": twin.observedDesired.value},
                        "actual": {"value": twin.reported.value},
                    }
                },
            }
            self._publish(self._engine.twin_update(device_id, json.dumps(update).encode()))

    def report_states(self, request: pb.ReportDeviceStatesRequest) -> None:
        """server.go's ReportDeviceStates (1.18+)."""
        self.calls.append("ReportDeviceStates")
        if not request.state or not request.deviceName:
            raise ValueError("ReportDeviceStatesRequest is invalid data")
        device_id = self._device_id(request.deviceNamespace, request.deviceName)
        body = json.dumps({"event_id": "", "timestamp": now_ms(), "state": request.state})
        self._publish(self._engine.state_update(device_id, body.encode()))

    def _device_id(self, namespace: str, name: str) -> str:
        with self._lock:
            for device_id, device in self._devices.items():
                if (device.namespace, device.name) == (namespace or "default", name):
                    return device_id
        return name

    def allow(self) -> bool:
        """One call against the limiter."""
        allowed = self._limiter.allow()
        if not allowed:
            self.refused += 1
        return allowed

    def mappers(self) -> Mapping[str, bytes]:
        """Registered mappers by protocol."""
        with self._lock:
            return dict(self._mappers)


def _log_failure(future: futures.Future[None]) -> None:
    if future.exception() is not None:
        _LOGGER.error("DMI call failed", exc_info=future.exception())


class _Servicer(rpc.DeviceManagerServiceServicer):  # type: ignore[misc] # generated, untyped
    def __init__(self, edgecore: DmiEdgecore) -> None:
        self._edgecore = edgecore

    def _guard(self, context: Any, what: str, name: str) -> None:
        if not self._edgecore.allow():
            context.abort(
                grpc.StatusCode.UNKNOWN, f"fail to {what} because of too many request: {name}"
            )

    def _invalid(self, context: Any, exc: ValueError) -> None:
        context.abort(grpc.StatusCode.UNKNOWN, str(exc))

    def MapperRegister(
        self, request: pb.MapperRegisterRequest, context: Any
    ) -> pb.MapperRegisterResponse:
        self._guard(context, "register mapper", request.mapper.name)
        try:
            return self._edgecore.mapper_register(request)
        except ValueError as exc:
            self._invalid(context, exc)
            raise

    def ReportDeviceStatus(
        self, request: pb.ReportDeviceStatusRequest, context: Any
    ) -> pb.ReportDeviceStatusResponse:
        self._guard(context, "report device status", request.deviceName)
        try:
            self._edgecore.report_status(request)
        except ValueError as exc:
            self._invalid(context, exc)
        return pb.ReportDeviceStatusResponse()

    def ReportDeviceStates(
        self, request: pb.ReportDeviceStatesRequest, context: Any
    ) -> pb.ReportDeviceStatesResponse:
        self._guard(context, "report device states", request.deviceName)
        try:
            self._edgecore.report_states(request)
        except ValueError as exc:
            self._invalid(context, exc)
        return pb.ReportDeviceStatesResponse()
