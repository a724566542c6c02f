"""The edge inference runtime: requests in over MQTT, batched inference, responses out."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_runtime import codec
from edge_runtime.answers import RecentAnswers, Seen
from edge_runtime.backends.base import Model
from edge_runtime.batching import BatchOutcome, Job, MicroBatcher
from edge_runtime.errors import ConfigError, Overloaded, PayloadError
from edge_runtime.health import HealthServer
from edge_runtime.messages import (
    FaceResult,
    Response,
    ServiceInfo,
    Status,
    Timings,
    WireFormat,
)
from edge_runtime.metrics import Metrics
from edge_runtime.model_sync import ModelSync, Served
from edge_runtime.settings import Settings, TwinLayout, TwinTransport
from edge_runtime.topics import (
    BROKER_DROPPED_TOPIC,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    OFFLINE,
    ONLINE,
    REQUEST_QOS,
    RESULT_QOS,
    STATUS_QOS,
    Topics,
)
from edge_runtime.transport import Credentials, InboundMessage, MqttTransport, Will
from kubeedge_twin import DeviceRef, Layout, TwinClient, TwinSource, TwinTopics

if TYPE_CHECKING:
    from kubeedge_twin.dmi.mapper import DmiMapper

_LOGGER = logging.getLogger(__name__)
_OFFLINE_PUBLISH_TIMEOUT_S = 2.0


class RuntimeState(enum.Enum):
    """Lifecycle of a runtime."""

    CREATED = "created"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class _ReplyTo:
    """Everything needed to answer one request."""

    message: InboundMessage
    device: str
    request_id: str
    captured_at_ms: int
    wire: WireFormat
    topic: str
    correlation: bytes | None
    received_at: float


def _read_secret(path: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("mqtt.password_file", path, f"cannot read: {exc}") from exc


class Runtime:
    """Edge inference runtime: readings in over MQTT, predictions out.

    Args:
        settings: Validated settings.
        model: The model to serve first.
        served: What ``model`` is in twin terms, when it came from the model cache.
        clock: Monotonic clock (injected by tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        model: Model,
        served: Served | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._topics = Topics(settings.topic_root, settings.mqtt.response_topic_filter)
        self._model = model
        self._clock = clock
        self.metrics = Metrics()
        self.metrics.serving(model.ref.name, model.ref.version, model.variant)
        self.state = RuntimeState.CREATED
        self._stop = asyncio.Event()
        self._recent = RecentAnswers(settings.limits.answer_cache_size)
        self._broker_dropped_seen = 0
        self._publishing = 0
        self._published = asyncio.Event()
        self._published.set()
        mqtt = settings.mqtt
        subscriptions = [
            (self._topics.request_subscription(mqtt.share_group), REQUEST_QOS),
            (BROKER_DROPPED_TOPIC, 0),
        ]
        self._twin: TwinClient | None = None  # the MQTT twin (KubeEdge 1.4-1.14)
        self._dmi: DmiMapper | None = None  # the DMI mapper (KubeEdge 1.15+)
        self._model_sync: ModelSync | None = None
        if settings.twin.enabled:
            twin: TwinSource
            if settings.twin.transport is TwinTransport.DMI:
                from kubeedge_twin.dmi.mapper import DmiMapper  # grpc: only for DMI

                self._dmi = DmiMapper(
                    name=f"edgeinfer-{settings.runtime_id}",
                    protocol=settings.dmi.protocol,
                    socket=settings.dmi.socket,
                    edgecore_socket=settings.dmi.edgecore_socket,
                )
                twin = self._dmi.follow(settings.twin.namespace, settings.twin_device)
            else:
                layout = Layout.V1_4 if settings.twin.layout is TwinLayout.V1_4 else Layout.V1_17
                twin = self._twin = TwinClient(
                    DeviceRef(settings.twin_device, settings.twin.namespace),
                    topics=TwinTopics(layout),
                    publish=lambda topic, payload: self._transport.publish_nowait(topic, payload),
                )
                subscriptions += self._twin.subscriptions
            self._model_sync = ModelSync(
                settings,
                twin,
                current=model,
                swap=self.swap_model,
                initial=served,
                on_swap=lambda result, _version: self.metrics.model_swaps.labels(result).inc(),
            )
        self._transport = MqttTransport(
            mqtt.broker,
            client_id=settings.client_id,
            subscriptions=subscriptions,
            will=Will(self._topics.state(settings.runtime_id), OFFLINE, STATUS_QOS, True),
            credentials=Credentials(
                mqtt.username,
                _read_secret(mqtt.password_file),
                mqtt.ca_file,
                mqtt.cert_file,
                mqtt.key_file,
            ),
            keepalive_s=mqtt.keepalive_s,
            # mosquitto hands a shared subscription's messages round-robin to every member
            # with a session, connected or not (src/subs.c: subs__shared_process): a replica
            # that died with a kept session would swallow its share until the session expired.
            session_expiry_s=0 if mqtt.share_group else mqtt.session_expiry_s,
            clean_start=bool(mqtt.share_group),
            manual_ack=True,
            reconnect_min_s=mqtt.reconnect_min_s,
            reconnect_max_s=mqtt.reconnect_max_s,
            connect_timeout_s=mqtt.connect_timeout_s,
            receive_maximum=mqtt.receive_maximum,
            max_outgoing_inflight=0,  # every answer goes out at once, before its request's ack
            on_connect=self._announce,
        )
        batch = settings.batch
        self._batcher: MicroBatcher[_ReplyTo] = MicroBatcher(
            lambda: self._model,
            self._deliver,
            max_size=batch.max_size,
            max_wait_s=batch.max_wait_s,
            max_queue=batch.max_queue,
            request_timeout_s=batch.request_timeout_s,
            clock=clock,
            on_batch=self._observe_batch,
            on_loop=batch.on_loop,
        )

    @property
    def transport(self) -> MqttTransport:
        """The MQTT transport (shared with components that publish, such as twin sync)."""
        return self._transport

    @property
    def model_sync(self) -> ModelSync | None:
        """The twin-driven model manager (``None`` when twin sync is off)."""
        return self._model_sync

    @property
    def model(self) -> Model:
        """The model answering requests now."""
        return self._model

    @property
    def ready(self) -> bool:
        """True while serving and connected to the broker."""
        return self.state is RuntimeState.SERVING and self._transport.connected.is_set()

    def service_info(self) -> ServiceInfo:
        """What the runtime advertises on its retained info topic."""
        model, s = self._model, self._settings
        return ServiceInfo(
            runtime_id=s.runtime_id,
            model=model.ref,
            input=model.input_spec,
            labels=model.labels,
            max_batch=s.batch.max_size,
            max_faces_per_request=s.limits.max_faces_per_request,
            max_payload_bytes=s.limits.max_payload_bytes,
            max_face_side=s.limits.max_face_side,
            request_topic_filter=self._topics.request_filter,
        )

    def swap_model(self, model: Model) -> Model:
        """Serve ``model`` from the next batch on; return the previous model (still open)."""
        previous, self._model = self._model, model
        self.metrics.serving(model.ref.name, model.ref.version, model.variant)
        self._publish_info()
        return previous

    def stop(self) -> None:
        """Begin a graceful stop: no new requests, drain, publish offline, return."""
        self._stop.set()

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until ``stop()`` (graceful) or cancellation (immediate)."""
        s = self._settings
        name = s.runtime_id
        health: contextlib.AbstractAsyncContextManager[object] = (
            HealthServer(
                self.metrics.registry,
                lambda: self.ready,
                host=s.metrics.host,
                port=s.metrics.port,
            )
            if s.metrics.port
            else contextlib.nullcontext()
        )
        try:
            async with health, self._transport, asyncio.TaskGroup() as tg:
                batcher = tg.create_task(self._batcher.serve(), name=f"runtime[{name}].batcher")
                ingest = tg.create_task(self._ingest(), name=f"runtime[{name}].ingest")
                if self._model_sync is not None:
                    sync = tg.create_task(self._model_sync.run(), name=f"runtime[{name}].models")
                if self._dmi is not None:
                    dmi = tg.create_task(self._dmi.run(), name=f"runtime[{name}].dmi")
                    if self._model_sync is not None:
                        self._model_sync.report()  # sent once registered, again on re-register
                self.state = RuntimeState.SERVING
                if on_ready is not None:
                    on_ready()
                await self._stop.wait()
                self.state = RuntimeState.DRAINING
                ingest.cancel()
                await self._drain()
                batcher.cancel()
                if self._model_sync is not None:
                    sync.cancel()
                if self._dmi is not None:
                    dmi.cancel()
        finally:
            self.state = RuntimeState.STOPPED

    async def _drain(self) -> None:
        _LOGGER.info("draining %d queued requests", self._batcher.depth)
        try:
            async with asyncio.timeout(self._settings.shutdown_timeout_s):
                await self._batcher.drain()
                await self._published.wait()
        except TimeoutError:
            _LOGGER.warning("drain timed out; unanswered requests stay with the broker")
        await self._publish_offline()

    async def _publish_offline(self) -> None:
        if not self._transport.connected.is_set():
            return
        future = self._transport.publish_nowait(
            self._topics.state(self._settings.runtime_id),
            OFFLINE,
            qos=STATUS_QOS,
            retain=True,
        )
        try:
            async with asyncio.timeout(_OFFLINE_PUBLISH_TIMEOUT_S):
                await future
        except TimeoutError:
            _LOGGER.warning("could not publish offline state before exit")

    def _announce(self) -> None:
        """After each (re)connect: retained info and ``online``, re-read and report the twin."""
        self.metrics.connected.set(1)
        self._publish_info()
        if self._twin is not None and self._model_sync is not None:
            # Deltas may have been missed while away: ask for the whole twin again.
            self._twin.request_twins().add_done_callback(self._log_failure)
            self._model_sync.report()

    def _publish_info(self) -> None:
        """Publish the retained ServiceInfo and ``online``."""
        runtime_id = self._settings.runtime_id
        for future in (
            self._transport.publish_nowait(
                self._topics.info(runtime_id),
                codec.encode_service_info(self.service_info()),
                qos=STATUS_QOS,
                retain=True,
                content_type=CONTENT_TYPE_PROTOBUF,
            ),
            self._transport.publish_nowait(
                self._topics.state(runtime_id), ONLINE, qos=STATUS_QOS, retain=True
            ),
        ):
            future.add_done_callback(self._log_failure)

    @staticmethod
    def _log_failure(future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            _LOGGER.warning("status publish failed: %s", future.exception())

    async def _ingest(self) -> None:
        async for message in self._transport.messages():
            try:
                if message.topic == BROKER_DROPPED_TOPIC:
                    self._broker_dropped(message.payload)
                    continue
                if self._twin is not None and message.topic.startswith("$hw/"):
                    if not self._twin.handle(message.topic, message.payload):
                        _LOGGER.info("ignoring twin message on %.200s", message.topic)
                    self._transport.ack(message)
                    continue
                self._handle(message)
            except Exception:
                # A message must never stop the runtime: unacknowledged, it would come back
                # after the restart and stop it again (a crash loop for the session's life).
                _LOGGER.exception("failed handling a message on %.200s", message.topic)
                self.metrics.rejected.labels("internal").inc()
                self._transport.ack(message)

    def _broker_dropped(self, payload: bytes) -> None:
        try:
            dropped = int(payload)
        except ValueError:
            return
        if dropped > self._broker_dropped_seen:
            _LOGGER.warning(
                "the broker dropped %d messages since it started (queues full); devices that "
                "retry get answers all the same",
                dropped,
            )
        self._broker_dropped_seen = dropped
        self.metrics.broker_dropped.set(dropped)

    def _handle(self, message: InboundMessage) -> None:
        limits = self._settings.limits
        device = self._topics.device_of_request(message.topic)
        if device is None:
            _LOGGER.info("ignoring message on unexpected topic %.200s", message.topic)
            self.metrics.rejected.labels("bad_topic").inc()
            self._transport.ack(message)
            return
        wire = (
            WireFormat.JSON
            if message.content_type.split(";")[0].strip() == CONTENT_TYPE_JSON
            else WireFormat.PROTOBUF
        )
        received_at = self._clock()
        if len(message.payload) > limits.max_payload_bytes:
            error = f"payload of {len(message.payload)} bytes exceeds {limits.max_payload_bytes}"
            self._reject(
                self._reply_to(message, device, wire, received_at), "payload_too_large", error
            )
            return
        try:
            request = codec.decode_request(
                message.payload,
                wire,
                topic_device=device,
                max_faces=limits.max_faces_per_request,
                max_face_side=limits.max_face_side,
            )
        except PayloadError as exc:
            reply = self._reply_to(message, device, wire, received_at, exc.request_id)
            self._reject(reply, exc.reason, str(exc))
            return
        reply = self._reply_to(
            message, device, wire, received_at, request.request_id, request.captured_at_ms
        )
        seen, answer = self._recent.begin(device, request.request_id)
        if seen is not Seen.NEW:
            # A device's retry: never run the model twice for one request.
            self.metrics.duplicates.labels(seen.value).inc()
            if answer is None:  # still being answered
                self._transport.ack(message)
            else:
                self._send(reply, answer)
            return
        try:
            self._batcher.submit(Job(request.faces, reply))
        except Overloaded as exc:
            self._respond(reply, Status.RESOURCE_EXHAUSTED, error=str(exc))

    def _reply_to(
        self,
        message: InboundMessage,
        device: str,
        wire: WireFormat,
        received_at: float,
        request_id: str = "",
        captured_at_ms: int = 0,
    ) -> _ReplyTo:
        topic, ignored = self._topics.response(device, message.response_topic)
        if ignored:
            _LOGGER.info(
                "answering %s on its result topic, not on Response Topic %r (%s)",
                device,
                message.response_topic[:200],
                ignored,
            )
            self.metrics.response_topics_ignored.labels(ignored).inc()
        return _ReplyTo(
            message=message,
            device=device,
            request_id=request_id,
            captured_at_ms=captured_at_ms,
            wire=wire,
            topic=topic,
            correlation=message.correlation_data,
            received_at=received_at,
        )

    def _reject(self, reply: _ReplyTo, reason: str, error: str) -> None:
        _LOGGER.info("invalid request from %s: %.300s", reply.device, error)
        self.metrics.rejected.labels(reason).inc()
        self._respond(reply, Status.INVALID_ARGUMENT, error=error)

    def _deliver(self, job: Job[_ReplyTo], outcome: BatchOutcome) -> None:
        reply = job.context
        self.metrics.queue_seconds.observe(outcome.queue_s)
        timings = Timings(
            queue_us=int(outcome.queue_s * 1e6),
            inference_us=int(outcome.inference_s * 1e6),
            batch_size=outcome.batch_faces,
        )
        if outcome.expired:
            limit = self._settings.batch.request_timeout_s
            self._respond(
                reply,
                Status.DEADLINE_EXCEEDED,
                timings=timings,
                error=f"waited {outcome.queue_s:.3f} s in queue (limit {limit} s)",
            )
            return
        model, probabilities = outcome.model, outcome.probabilities
        if probabilities is None or model is None:
            status = Status.UNAVAILABLE if model is None else Status.INTERNAL
            self._respond(reply, status, error=outcome.error, timings=timings)
            return
        labels = model.labels
        indices = np.argmax(probabilities, axis=1)
        results = tuple(
            FaceResult(labels[int(i)], int(i), float(row[i]), tuple(row.tolist()))
            for i, row in zip(indices, probabilities, strict=True)
        )
        self.metrics.faces.inc(len(results))
        self._respond(reply, Status.OK, results=results, model=model, timings=timings)

    def _respond(
        self,
        reply: _ReplyTo,
        status: Status,
        *,
        error: str = "",
        results: tuple[FaceResult, ...] = (),
        model: Model | None = None,
        timings: Timings | None = None,
    ) -> None:
        elapsed = self._clock() - reply.received_at
        base = timings or Timings()
        response = Response(
            request_id=reply.request_id,
            device_id=reply.device,
            status=status,
            error=error,
            model=(model or self._model).ref,
            results=results,
            timings=Timings(base.queue_us, base.inference_us, int(elapsed * 1e6), base.batch_size),
            captured_at_ms=reply.captured_at_ms,
        )
        self.metrics.requests.labels(status.name).inc()
        self.metrics.request_seconds.observe(elapsed)
        self._recent.finish(reply.device, reply.request_id, response)
        self._send(reply, response)

    def _send(self, reply: _ReplyTo, response: Response) -> None:
        """Publish ``response`` and acknowledge its request behind it.

        The request's PUBACK is queued after the answer's PUBLISH on the same connection (the
        transport sends every publish at once, in order), so the broker cannot see the
        request acknowledged without having the answer first: TCP keeps the order. A lost
        connection voids the ack, and the broker redelivers the request. Acknowledging now,
        not at the answer's PUBACK, lets the transport stop reading the socket for flow
        control without waiting for PUBACKs that would arrive on it.
        """
        payload = codec.encode_response(response, reply.wire)
        try:
            future = self._transport.publish_nowait(
                reply.topic,
                payload,
                qos=RESULT_QOS,
                content_type=CONTENT_TYPE_JSON
                if reply.wire is WireFormat.JSON
                else CONTENT_TYPE_PROTOBUF,
                correlation_data=reply.correlation,
            )
        except ValueError as exc:  # paho refuses the topic or properties before sending
            self.metrics.publish_failures.inc()
            _LOGGER.warning("cannot answer %s on %.200s: %s", reply.device, reply.topic, exc)
            self._transport.ack(reply.message)
            return
        self._transport.ack(reply.message)
        self._publishing += 1
        self._published.clear()
        future.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future[None]) -> None:
        self._publishing -= 1
        if self._publishing == 0:
            self._published.set()
        if not future.cancelled() and future.exception() is not None:
            self.metrics.publish_failures.inc()
            _LOGGER.warning("response publish failed: %s", future.exception())

    def _observe_batch(self, faces: int, inference_s: float) -> None:
        self.metrics.batch_size.observe(faces)
        self.metrics.inference_seconds.observe(inference_s)
        self.metrics.queue_depth.set(self._batcher.depth)
