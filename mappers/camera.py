"""The camera mapper: desired twins down to each camera's control topic, status back up.

For every camera device it serves (SPEC §4.3): subscribes to ``twin/update/delta`` and
``twin/get/result``, asks ``twin/get`` on every (re)connect, forwards desired ``capture_fps`` and
``enabled`` to ``<root>/<camera>/control`` (retained), and turns the camera's retained
``<root>/<camera>/status`` into ``twin/update`` actual values (on change, at a bounded rate),
``state/update`` (``online``/``offline``) and ``$ke/events/device/<id>/data/update``.

On KubeEdge 1.15+ (``dmi``) the twins go over DMI instead: the mapper registers with edgecore for
the cameras' protocol, hears desired values in ``RegisterDevice``/``UpdateDevice`` and reports
with ``ReportDeviceStatus``/``ReportDeviceStates``, coalesced within edgecore's rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import aiomqtt

from edgeinfer import camera as contract
from edgeinfer.twins import CAMERA_DESIRED, CAPTURE_FPS, ENABLED, LAST_EMOTION, MODEL_VERSION
from kubeedge_twin import TwinClient, TwinTopics, sanitize_value
from kubeedge_twin.dmi.mapper import DmiMapper
from kubeedge_twin.dmi.v1beta1 import api_pb2 as pb
from kubeedge_twin.link import TwinLink
from kubeedge_twin.messages import data_update
from kubeedge_twin.topics import data_topic
from mappers.metrics import MapperMetrics
from mappers.profile import MappedDevice, mapped_from_dmi
from mappers.reporter import BoundedReporter, hand_over, publish_safely
from mappers.session import every_until_done, publish, twin_publisher

_LOGGER = logging.getLogger(__name__)


def _control(desired: Mapping[str, str]) -> contract.CameraControl:
    """The control message for desired twin values (raises CameraMessageError if invalid)."""
    fps = desired.get(CAPTURE_FPS) or None
    enabled = desired.get(ENABLED) or None
    return contract.CameraControl(
        None if fps is None else contract.parse_fps(fps),
        None if enabled is None else contract.parse_enabled(enabled),
    )


def _actual(status: contract.CameraStatus) -> dict[str, str]:
    values = {}
    if status.capture_fps is not None:
        values[CAPTURE_FPS] = f"{status.capture_fps:g}"
    if status.enabled is not None:
        values[ENABLED] = str(status.enabled).lower()
    if status.model_version:
        values[MODEL_VERSION] = sanitize_value(status.model_version)
    if status.last_emotion:
        values[LAST_EMOTION] = sanitize_value(status.last_emotion)
    return values


class _Camera:
    """One camera's twin client, reporter and last known state within a connection."""

    def __init__(
        self,
        device: MappedDevice,
        client: aiomqtt.Client,
        topics: TwinTopics,
        metrics: MapperMetrics,
        interval_s: float,
        twin: TwinLink | None = None,
    ) -> None:
        self.device = device
        self._client = client
        self._metrics = metrics
        self.twin: TwinLink = twin or TwinClient(
            device.ref, topics=topics, publish=twin_publisher(client)
        )
        self._device_id = topics.device_id(device.ref)
        self.reporter = BoundedReporter(device, self._report, interval_s)
        self.state: str | None = None
        self.status: contract.CameraStatus | None = None

    async def _report(self, values: Mapping[str, str]) -> None:
        _LOGGER.debug("camera %s: reporting %s", self.device.ref.name, dict(values))
        types = {name: self.device.twins[name] for name in values}
        hand_over(self._metrics, "twin", lambda: self.twin.report(values, types))
        data = {k: v for k, v in values.items() if k in self.device.data_properties}
        if data:
            topic, payload = data_topic(self._device_id), data_update(data, types)
            await publish_safely(
                self._metrics, "data", lambda: publish(self._client, topic, payload, qos=0)
            )

    async def on_status(self, status: contract.CameraStatus) -> None:
        self.status = status
        if status.state != self.state:
            self.state = status.state
            state = status.state
            hand_over(self._metrics, "state", lambda: self.twin.report_state(state))
        self.reporter.offer(_actual(status))

    async def resend(self) -> None:
        """Report the last known state and values again."""
        self.reporter.forget()
        self.state = None
        if self.status is not None:
            await self.on_status(self.status)


class CameraMapper:
    """Bridges camera devices to edgecore.

    Args:
        devices: The cameras (from the device profile or Device YAML).
        topics: DeviceTwin topic layout.
        topic_root: Application topic root of the cameras' control/status topics.
        report_interval_s: Least time between two twin reports of one camera.
        resync_s: How often to re-read desired values and re-send state and actual values
            (an edgecore restart is invisible on the broker; this heals it).
        metrics: Counters.
        dmi: KubeEdge 1.15+: the DMI mapper of the cameras' protocol (its ``run`` must run
            beside the sessions); twins then go over DMI, not MQTT, and the cameras edgecore
            hands over (``MapperRegister``, ``RegisterDevice``) are served as they come, with
            no device file; ``RemoveDevice`` stops serving one.
        model: With ``dmi``: serve only Devices of this DeviceModel.
    """

    def __init__(
        self,
        devices: list[MappedDevice],
        *,
        topics: TwinTopics,
        topic_root: str = "emotion/v1",
        report_interval_s: float = 1.0,
        resync_s: float = 30.0,
        metrics: MapperMetrics | None = None,
        dmi: DmiMapper | None = None,
        model: str = "",
    ) -> None:
        self._devices = {device.ref.name: device for device in devices}
        self._dmi = dmi
        self._model = model
        self._dmi_twins = (
            {name: dmi.follow(device.ref.namespace, name) for name, device in self._devices.items()}
            if dmi is not None
            else {}
        )
        if dmi is not None:
            dmi.on_new_device = self._adopt
            dmi.on_removed_device = self._drop
        self._arrived: asyncio.Queue[str] = asyncio.Queue()  # names adopted during a session
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}  # per camera, this session
        self._topics = topics
        self._root = topic_root
        self._interval_s = report_interval_s
        self._resync_s = resync_s
        self.metrics = metrics or MapperMetrics("camera")

    @property
    def served(self) -> list[str]:
        """The names of the cameras this mapper serves now."""
        return sorted(self._devices)

    def _adopt(self, device: pb.Device) -> bool:
        """A Device edgecore handed over that no file named (KubeEdge 1.15+)."""
        if self._dmi is None or (self._model and device.spec.deviceModelReference != self._model):
            return False
        mapped = mapped_from_dmi(device)
        if mapped.ref.name in self._devices:
            return False  # one name, one camera: the topics carry no namespace
        self._devices[mapped.ref.name] = mapped
        self._dmi_twins[mapped.ref.name] = self._dmi.follow(mapped.ref.namespace, mapped.ref.name)
        self._arrived.put_nowait(mapped.ref.name)
        _LOGGER.info("camera %s/%s: served (from edgecore)", mapped.ref.namespace, mapped.ref.name)
        return True

    def _drop(self, namespace: str, name: str) -> None:
        device = self._devices.get(name)
        if self._dmi is None or device is None or device.ref.namespace != namespace:
            return
        del self._devices[name]
        self._dmi_twins.pop(name, None)
        self._dmi.unfollow(namespace, name)
        for task in self._tasks.pop(name, []):
            task.cancel()
        _LOGGER.info("camera %s/%s: no longer served (removed by edgecore)", namespace, name)

    def _camera(self, client: aiomqtt.Client, name: str) -> _Camera:
        return _Camera(
            self._devices[name],
            client,
            self._topics,
            self.metrics,
            self._interval_s,
            self._dmi_twins.get(name),
        )

    def _start(self, tg: asyncio.TaskGroup, client: aiomqtt.Client, camera: _Camera) -> None:
        self._tasks[camera.device.ref.name] = [
            tg.create_task(camera.reporter.run()),
            tg.create_task(self._forward_desired(client, camera)),
        ]

    async def _serve_arrivals(
        self, tg: asyncio.TaskGroup, client: aiomqtt.Client, cameras: dict[str, _Camera]
    ) -> None:
        while True:
            name = await self._arrived.get()
            if name in cameras or name not in self._devices:
                continue  # already served by this session, or removed meanwhile
            cameras[name] = self._camera(client, name)
            self._start(tg, client, cameras[name])

    async def session(self, client: aiomqtt.Client) -> None:
        """Serve one connection until it drops: subscribe, re-read twins, bridge."""
        cameras = {name: self._camera(client, name) for name in self._devices}
        for camera in cameras.values():
            for topic, qos in camera.twin.subscriptions:
                await client.subscribe(topic, qos)
        await client.subscribe(contract.status_filter(self._root), 1)
        async with asyncio.TaskGroup() as tg:
            for camera in cameras.values():
                self._start(tg, client, camera)
            arrivals = tg.create_task(self._serve_arrivals(tg, client, cameras))
            receiver = tg.create_task(self._receive(client, cameras))

            async def resync() -> None:
                for camera in list(cameras.values()):
                    await camera.resend()
                # Edgecore may have lost what it was sent (its restart is invisible on the
                # broker): ask again, for one resync period at most.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._resync_s):
                        await asyncio.gather(*(c.twin.resync() for c in list(cameras.values())))

            await every_until_done(receiver, self._resync_s, resync)
            arrivals.cancel()

    async def _forward_desired(self, client: aiomqtt.Client, camera: _Camera) -> None:
        current = camera.twin.current()  # a new connection: the broker may have lost it
        if current is not None:
            await self._control(client, camera, current)
        async for desired in camera.twin.desired():
            await self._control(client, camera, desired)

    async def _control(
        self, client: aiomqtt.Client, camera: _Camera, desired: Mapping[str, str]
    ) -> None:
        name = camera.device.ref.name
        wanted = {k: v for k, v in desired.items() if k in CAMERA_DESIRED}
        try:
            control = _control(wanted)
        except contract.CameraMessageError as exc:
            self.metrics.refused("desired")
            _LOGGER.warning("camera %s: desired value refused: %s", name, exc)
            return
        if control == contract.CameraControl():
            return
        topic = contract.control_topic(self._root, name)
        await publish(client, topic, control.encode(), retain=True)
        _LOGGER.info("camera %s: desired %s sent", name, control)

    async def _receive(self, client: aiomqtt.Client, cameras: Mapping[str, _Camera]) -> None:
        async for message in client.messages:
            topic, payload = message.topic.value, message.payload
            if not isinstance(payload, bytes):
                continue
            camera_name = contract.camera_of(self._root, topic, "status")
            if camera_name is None:
                self._twin_message(cameras, topic, payload)
                continue
            await self._status(cameras.get(camera_name), camera_name, payload)

    def _twin_message(self, cameras: Mapping[str, _Camera], topic: str, payload: bytes) -> None:
        for camera in cameras.values():
            bad_before = camera.twin.bad_messages
            if camera.twin.handle(topic, payload):
                if camera.twin.bad_messages > bad_before:
                    self.metrics.refused("twin")
                else:
                    self.metrics.took("twin")
                return

    async def _status(self, camera: _Camera | None, name: str, payload: bytes) -> None:
        if camera is None:
            self.metrics.refused("unknown_device")
            return
        if not payload:
            return  # a cleared retained status
        try:
            status = contract.CameraStatus.decode(payload)
        except contract.CameraMessageError as exc:
            self.metrics.refused("status")
            _LOGGER.warning("camera %s: bad status: %s", name, exc)
            return
        self.metrics.took("status")
        await camera.on_status(status)
