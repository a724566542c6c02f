"""The edge inference runtime: the inference service, its front doors and model sync."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_runtime.backends.base import Model
from edge_runtime.messages import ServiceInfo
from edge_runtime.metrics import Metrics
from edge_runtime.model_sync import ModelSync, Served
from edge_runtime.mqtt_door import DoorTransport, MqttDoor, OpenTransport
from edge_runtime.service import InferenceService
from edge_runtime.settings import Settings, TwinLayout, TwinTransport, read_secret
from kubeedge_twin import DeviceRef, Layout, TwinClient, TwinTopics
from kubeedge_twin.client import Publish
from kubeedge_twin.link import TwinLink

if TYPE_CHECKING:
    from edge_runtime.offload.joint import Offloader
    from edge_runtime.offload.samples import SampleSpool
    from edge_runtime.offload.twin import OffloadTwin
    from edge_runtime.web.server import HttpListener
    from kubeedge_twin.dmi.mapper import DmiMapper

_LOGGER = logging.getLogger(__name__)


class RuntimeState(enum.Enum):
    """Lifecycle of a runtime."""

    CREATED = "created"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


class Runtime:
    """Edge inference runtime: one inference service behind its front doors.

    The MQTT door (devices), the HTTP doors (TF Serving REST, the Open Inference Protocol) and
    the twin-driven model sync all share one :class:`InferenceService`.

    Args:
        settings: Validated settings.
        model: The model to serve first.
        served: What ``model`` is in twin terms, when it came from the model cache.
        clock: Monotonic clock (injected by tests).
        transport: Opens the MQTT door's connection (default: to ``settings.mqtt.broker``;
            ``edge_runtime.testing.MemoryBroker`` for tests without a broker).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        model: Model,
        served: Served | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: OpenTransport | None = None,
    ) -> None:
        self._settings = settings
        self.metrics = Metrics()
        self.state = RuntimeState.CREATED
        self._stop = asyncio.Event()
        self._samples: SampleSpool | None = None
        if settings.samples.url:
            from edge_runtime.offload.samples import SampleSpool

            token = read_secret("samples.token_file", settings.samples.token_file)
            self._samples = SampleSpool(settings.samples, self.metrics, token=token)
        offloader = (
            _offloader(settings, self.metrics, model, self._samples)
            if settings.offload.url
            else None
        )
        self.service = InferenceService(
            settings.batch,
            model=model,
            metrics=self.metrics,
            clock=clock,
            offloader=offloader,
        )
        self._twin: TwinLink | None = None  # the runtime's own Device (MQTT or DMI)
        self._dmi: DmiMapper | None = None  # what serves it over DMI (KubeEdge 1.15+)
        self._model_sync: ModelSync | None = None
        self._offload_twin: OffloadTwin | None = None
        self._twin_resync: asyncio.Task[None] | None = None
        self._mqtt: MqttDoor | None = None  # None: no broker, the HTTP doors only
        if settings.twin.enabled:
            self._twin, self._dmi = _twin_link(
                settings,
                lambda topic, payload: self.transport.publish_nowait(topic, payload),
            )
        if settings.mqtt.broker or transport is not None:
            self._mqtt = MqttDoor(
                settings,
                self.service,
                self.metrics,
                info=self.service_info,
                other_subscriptions=self._twin.subscriptions if self._twin is not None else (),
                on_other=self._twin.handle if self._twin is not None else None,
                on_connect=self._resync_twin,
                clock=clock,
                transport=transport,
            )
        if self._twin is not None:
            self._model_sync = ModelSync(
                settings,
                self._twin,
                current=model,
                swap=self.service.swap,
                initial=served,
                on_swap=lambda result, _version: self.metrics.model_swaps.labels(result).inc(),
            )
            if offloader is not None:
                from edge_runtime.offload.twin import OffloadTwin

                self._offload_twin = OffloadTwin(
                    self._twin,
                    offloader,
                    lambda: self.service.model,
                    self.metrics,
                    settings.offload.report_interval_s,
                )
        if (door := self._mqtt) is not None:
            self.service.on_swap(lambda _model: door.publish_info())
        if self._offload_twin is not None:
            self.service.on_swap(self._offload_twin.model_changed)
        elif offloader is not None:
            self.service.on_swap(offloader.use_model)

    @property
    def transport(self) -> DoorTransport:
        """The MQTT transport (shared with components that publish, such as twin sync).

        Raises:
            RuntimeError: the runtime has no MQTT door (``mqtt.broker`` empty).
        """
        if self._mqtt is None:
            raise RuntimeError("this runtime has no MQTT door (mqtt.broker is empty)")
        return self._mqtt.transport

    @property
    def model_sync(self) -> ModelSync | None:
        """The twin-driven model manager (``None`` when twin sync is off)."""
        return self._model_sync

    @property
    def model(self) -> Model:
        """The model answering requests now."""
        return self.service.model

    @property
    def ready(self) -> bool:
        """True while serving and connected to the broker (if it has one)."""
        connected = self._mqtt is None or self._mqtt.transport.connected.is_set()
        return self.state is RuntimeState.SERVING and connected

    def service_info(self) -> ServiceInfo:
        """What the runtime advertises on its retained info topic."""
        model, s = self.service.model, self._settings
        return ServiceInfo(
            runtime_id=s.runtime_id,
            model=model.ref,
            input=model.input_spec,
            labels=model.labels,
            max_batch=s.batch.max_size,
            max_faces_per_request=s.limits.max_faces_per_request,
            max_payload_bytes=s.limits.max_payload_bytes,
            max_face_side=s.limits.max_face_side,
            request_topic_filter=self._mqtt.request_filter if self._mqtt is not None else "",
        )

    def stop(self) -> None:
        """Begin a graceful stop: no new requests, drain, publish offline, return."""
        self._stop.set()

    def _listeners(self) -> list[HttpListener]:
        # aiohttp and orjson only here: programs that import edge_runtime's public names
        # (device_sim, mappers) must not need them.
        from edge_runtime.web.oip import OipDoor
        from edge_runtime.web.server import HttpListener, ops_routes
        from edge_runtime.web.tfserving import TfServingDoor

        s = self._settings
        listeners = []
        if s.http.port:
            tfserving = TfServingDoor(s.http, s.limits, self.service, self.metrics)
            oip = OipDoor(
                s.http,
                s.limits,
                self.service,
                self.metrics,
                lambda: self.state is RuntimeState.SERVING,
            )
            listeners.append(
                HttpListener(
                    [*ops_routes(self.metrics.registry, lambda: self.ready), *oip.routes()],
                    fallback=tfserving.handle,
                    host=s.http.host,
                    port=s.http.port,
                    max_body_bytes=s.http.max_body_bytes,
                    shutdown_timeout_s=s.shutdown_timeout_s,
                    name="TF Serving REST (/v1), Open Inference Protocol (/v2), metrics",
                    key="http.port",
                    token=read_secret("http.token_file", s.http.token_file),
                    on_refused=self.metrics.rejected.labels("http", "unauthorized").inc,
                )
            )
        if s.metrics.port and s.metrics.port != s.http.port:
            listeners.append(
                HttpListener(
                    ops_routes(self.metrics.registry, lambda: self.ready),
                    host=s.metrics.host,
                    port=s.metrics.port,
                    name="metrics and probes",
                    key="metrics.port",
                )
            )
        return listeners

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until ``stop()`` (graceful) or cancellation (immediate)."""
        name = self._settings.runtime_id
        try:
            async with contextlib.AsyncExitStack() as http:
                for listener in self._listeners():  # bound first: a taken port fails at once
                    await http.enter_async_context(listener)
                mqtt = self._mqtt
                async with mqtt or contextlib.nullcontext(), asyncio.TaskGroup() as tg:
                    batcher = tg.create_task(self.service.serve(), name=f"runtime[{name}].batcher")
                    ingest = tg.create_task(
                        mqtt.ingest() if mqtt is not None else asyncio.Event().wait(),
                        name=f"runtime[{name}].ingest",
                    )
                    twin_tasks = self._twin_tasks(tg)
                    if self._samples is not None:
                        uploads = tg.create_task(
                            self._samples.run(), name=f"runtime[{name}].samples"
                        )
                    if self._dmi is not None:
                        dmi = tg.create_task(self._dmi.run(), name=f"runtime[{name}].dmi")
                        self._report_twin()  # sent once registered, again on re-register
                    self.state = RuntimeState.SERVING
                    if on_ready is not None:
                        on_ready()
                    await self._stop.wait()
                    self.state = RuntimeState.DRAINING
                    ingest.cancel()
                    # Closing the HTTP listeners waits for the requests they are answering;
                    # the batcher, still running, answers them.
                    await http.aclose()
                    await self._drain()
                    batcher.cancel()
                    for task in twin_tasks:
                        task.cancel()
                    if self._samples is not None:
                        uploads.cancel()  # what waits stays on disk for the next start
                    if self._dmi is not None:
                        dmi.cancel()
        finally:
            if self._twin_resync is not None:
                self._twin_resync.cancel()
            self.state = RuntimeState.STOPPED

    def _twin_tasks(self, tg: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        """Follow the twin: desired values to model sync and joint inference, reports out."""
        if self._twin is None or self._model_sync is None:
            return []
        name = self._settings.runtime_id
        tasks = [
            tg.create_task(self._follow_twin(self._twin), name=f"runtime[{name}].twin"),
            tg.create_task(self._model_sync.run(), name=f"runtime[{name}].models"),
        ]
        if self._offload_twin is not None:
            tasks.append(
                tg.create_task(self._offload_twin.run(), name=f"runtime[{name}].offload-twin")
            )
        return tasks

    async def _follow_twin(self, twin: TwinLink) -> None:
        async for desired in twin.desired():
            if self._model_sync is not None:
                self._model_sync.want(desired)
            if self._offload_twin is not None:
                self._offload_twin.want(desired)

    def _report_twin(self) -> None:
        """Report what the twin carries: the model served, the offload rule in force."""
        if self._model_sync is not None:
            self._model_sync.report()
        if self._offload_twin is not None:
            self._offload_twin.report()

    async def _drain(self) -> None:
        _LOGGER.info("draining %d queued requests", self.service.depth)
        try:
            async with asyncio.timeout(self._settings.shutdown_timeout_s):
                await self.service.drain()
                if self._mqtt is not None:
                    await self._mqtt.flushed()
        except TimeoutError:
            _LOGGER.warning("drain timed out; unanswered requests stay with the broker")
        if self._mqtt is not None:
            await self._mqtt.publish_offline()

    def _resync_twin(self) -> None:
        """After each (re)connect, re-read and report a twin that rides on MQTT.

        Deltas may have been missed meanwhile; a DMI twin's edgecore does not see the broker.
        """
        if self._twin is not None and self._twin.subscriptions and self._model_sync is not None:
            if self._twin_resync is not None:
                self._twin_resync.cancel()
            self._report_twin()
            self._twin_resync = asyncio.get_running_loop().create_task(
                _resync_until_answered(self._twin, self._report_twin)
            )


def _offloader(
    settings: Settings, metrics: Metrics, model: Model, samples: SampleSpool | None
) -> Offloader:
    """Joint inference with the cloud's model (aiohttp only here: only when offloading)."""
    from edge_runtime.offload.cloud import CloudModel
    from edge_runtime.offload.joint import Offloader

    offload = settings.offload
    token = read_secret("offload.token_file", offload.token_file)
    cloud = CloudModel(offload.url, offload.model or model.ref.name, token=token)
    return Offloader(offload, metrics, cloud, model=model, samples=samples)


def _twin_link(settings: Settings, publish: Publish) -> tuple[TwinLink, DmiMapper | None]:
    """The runtime Device's twin, and the DMI mapper that must run beside it (if any).

    Over DMI on KubeEdge 1.15+, over MQTT (published with ``publish``) on 1.4-1.14.
    """
    device = DeviceRef(settings.twin_device, settings.twin.namespace)
    if settings.twin.transport is TwinTransport.DMI:
        from kubeedge_twin.dmi.mapper import DmiMapper  # grpc: only for DMI

        mapper = DmiMapper(
            name=f"edgeinfer-{settings.runtime_id}",
            protocol=settings.dmi.protocol,
            socket=settings.dmi.socket,
            edgecore_socket=settings.dmi.edgecore_socket,
        )
        return mapper.follow(device.namespace, device.name), mapper
    layout = Layout.V1_4 if settings.twin.layout is TwinLayout.V1_4 else Layout.V1_17
    return TwinClient(device, topics=TwinTopics(layout), publish=publish), None


async def _resync_until_answered(twin: TwinLink, report: Callable[[], None]) -> None:
    """``twin/get`` until edgecore answers, then report again.

    A get or report sent before edgecore 1.4 subscribed (a node's reboot can order it so) is lost.
    """
    await twin.resync()
    report()
