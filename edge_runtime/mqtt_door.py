"""The MQTT front door: device requests from the broker in, answers out, nothing lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from edge_runtime import codec
from edge_runtime.answers import RecentAnswers, Seen, digest
from edge_runtime.errors import Overloaded, PayloadError
from edge_runtime.futures import warn_on_failure
from edge_runtime.messages import (
    Response,
    SampleSource,
    ServiceInfo,
    Status,
    Timings,
    WireFormat,
)
from edge_runtime.metrics import Metrics
from edge_runtime.service import InferenceService, Outcome
from edge_runtime.settings import Settings, read_secret
from edge_runtime.transport import Credentials, InboundMessage, MqttTransport, Will
from edgeinfer.topics import (
    BROKER_DROPPED_TOPIC,
    CONTENT_TYPE_PROTOBUF,
    OFFLINE,
    ONLINE,
    REQUEST_QOS,
    STATUS_QOS,
    Topics,
)

_LOGGER = logging.getLogger(__name__)
_OFFLINE_PUBLISH_TIMEOUT_S = 2.0
FRONTDOOR = "mqtt"


class DoorTransport(Protocol):
    """What the door needs of its broker connection.

    ``MqttTransport``, or the in-memory one of ``edge_runtime.testing`` for tests above the wire.
    """

    connected: asyncio.Event

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def messages(self) -> AsyncIterator[InboundMessage]:
        """Messages of every subscription, in arrival order."""
        ...

    def ack(self, message: InboundMessage) -> None:
        """Acknowledge a message (manual acks, arrival order)."""
        ...

    def send(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str = "",
        correlation_data: bytes | None = None,
    ) -> None:
        """Publish at QoS 1, written before any ack queued after it."""
        ...

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str = "",
    ) -> asyncio.Future[None]:
        """Publish; the future completes when the broker has it."""
        ...

    async def confirmed(self) -> None:
        """Wait until the broker has acknowledged every ``send`` so far."""
        ...


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the door asks of the transport it opens."""

    subscriptions: Sequence[tuple[str, int]]
    will: Will
    on_connect: Callable[[], None]
    on_send_failed: Callable[[int], None]


OpenTransport = Callable[[Wiring], DoorTransport]


def broker_transport(settings: Settings) -> OpenTransport:
    """The door's transport to the broker ``settings.mqtt`` names."""
    mqtt = settings.mqtt

    def open_transport(wiring: Wiring) -> MqttTransport:
        return MqttTransport(
            mqtt.broker,
            client_id=settings.client_id,
            subscriptions=wiring.subscriptions,
            will=wiring.will,
            credentials=Credentials(
                mqtt.username,
                read_secret("mqtt.password_file", mqtt.password_file),
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
            on_connect=wiring.on_connect,
            on_send_failed=wiring.on_send_failed,
        )

    return open_transport


class _ReplyTo(NamedTuple):
    """Everything needed to answer one request (a NamedTuple: one is made per request)."""

    message: InboundMessage
    device: str
    request_id: str
    captured_at_ms: int
    wire: WireFormat
    topic: str
    correlation: bytes | None
    received_at: float
    faces: int = 0  # the faces' digest, telling a retry from a reused request id


class MqttDoor:
    """Takes device requests from the broker to the inference service and answers them.

    Enter it to connect (the transport reconnects by itself), run ``ingest`` to serve.

    Args:
        settings: Validated settings.
        service: The inference service that answers.
        metrics: The runtime's metrics.
        info: What to advertise on the retained info topic.
        other_subscriptions: Further topics to subscribe (the MQTT twin's).
        on_other: Handles a message on another topic; returns False when it did not.
        on_connect: Called after each (re)connect, once the retained state is out.
        clock: Monotonic clock (injected by tests).
        transport: Opens the connection (default: ``broker_transport(settings)``).
    """

    def __init__(
        self,
        settings: Settings,
        service: InferenceService,
        metrics: Metrics,
        *,
        info: Callable[[], ServiceInfo],
        other_subscriptions: Sequence[tuple[str, int]] = (),
        on_other: Callable[[str, bytes], bool] | None = None,
        on_connect: Callable[[], None] | None = None,
        clock: Callable[[], float],
        transport: OpenTransport | None = None,
    ) -> None:
        self._settings = settings
        self._service = service
        self._metrics = metrics
        self._info = info
        self._on_other = on_other
        self._on_connect = on_connect
        self._clock = clock
        self._topics = Topics(settings.topic_root, settings.mqtt.response_topic_filter)
        self._recent = RecentAnswers(settings.limits.answer_cache_size)
        self._broker_dropped_seen = 0
        # Per request, so the labelled children are looked up once, not per answer.
        self._request_seconds = metrics.request_seconds.labels(FRONTDOOR)
        self._requests = {
            status: metrics.requests.labels(FRONTDOOR, status.name) for status in Status
        }
        self._transport = (transport or broker_transport(settings))(
            Wiring(
                subscriptions=[
                    (self._topics.request_subscription(settings.mqtt.share_group), REQUEST_QOS),
                    (BROKER_DROPPED_TOPIC, 0),
                    *other_subscriptions,
                ],
                will=Will(self._topics.state(settings.runtime_id), OFFLINE, STATUS_QOS, True),
                on_connect=self._announce,
                on_send_failed=lambda _reason: self._metrics.publish_failures.inc(),
            )
        )

    @property
    def transport(self) -> DoorTransport:
        """The MQTT transport (shared with components that publish, such as the MQTT twin)."""
        return self._transport

    @property
    def request_filter(self) -> str:
        """The topic filter devices publish requests under."""
        return self._topics.request_filter

    async def __aenter__(self) -> Self:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc, tb)

    async def ingest(self) -> None:
        """Take messages until cancelled; a message never stops the loop."""
        async for message in self._transport.messages():
            try:
                if message.topic == BROKER_DROPPED_TOPIC:
                    self._broker_dropped(message.payload)
                    continue
                if self._on_other is not None and message.topic.startswith("$hw/"):
                    if not self._on_other(message.topic, message.payload):
                        _LOGGER.info("ignoring twin message on %.200s", message.topic)
                    self._transport.ack(message)
                    continue
                self._handle(message)
            except Exception:
                # A message must never stop the runtime: unacknowledged, it would come back
                # after the restart and stop it again (a crash loop for the session's life).
                _LOGGER.exception("failed handling a message on %.200s", message.topic)
                self._metrics.rejected.labels(FRONTDOOR, "internal").inc()
                self._transport.ack(message)

    async def flushed(self) -> None:
        """Wait until the broker has acknowledged every answer handed to the transport."""
        await self._transport.confirmed()

    async def publish_offline(self) -> None:
        """Publish the retained ``offline`` state, if connected (bounded wait)."""
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

    def publish_info(self) -> None:
        """Publish the retained ServiceInfo and ``online``."""
        runtime_id = self._settings.runtime_id
        for future in (
            self._transport.publish_nowait(
                self._topics.info(runtime_id),
                codec.encode_service_info(self._info()),
                qos=STATUS_QOS,
                retain=True,
                content_type=CONTENT_TYPE_PROTOBUF,
            ),
            self._transport.publish_nowait(
                self._topics.state(runtime_id), ONLINE, qos=STATUS_QOS, retain=True
            ),
        ):
            future.add_done_callback(warn_on_failure(_LOGGER, "status publish"))

    def _announce(self) -> None:
        self._metrics.connected.set(1)
        self.publish_info()
        if self._on_connect is not None:
            self._on_connect()

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
        self._metrics.broker_dropped.set(dropped)

    def _handle(self, message: InboundMessage) -> None:
        limits = self._settings.limits
        device = self._topics.device_of_request(message.topic)
        if device is None:
            _LOGGER.info("ignoring message on unexpected topic %.200s", message.topic)
            self._metrics.rejected.labels(FRONTDOOR, "bad_topic").inc()
            self._transport.ack(message)
            return
        wire = WireFormat.of(message.content_type)
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
        faces = digest(request.faces) if self._recent.remembers(request.request_id) else 0
        reply = self._reply_to(
            message, device, wire, received_at, request.request_id, request.captured_at_ms, faces
        )
        seen, answer = self._recent.begin(device, request.request_id, faces)
        if seen is not Seen.NEW:
            # A device's retry: never run the model twice for one request.
            self._metrics.duplicates.labels(seen.value).inc()
            if answer is None:  # still being answered
                self._transport.ack(message)
            else:
                self._send(reply, answer)
            return
        try:
            self._service.submit(
                request.faces,
                lambda outcome: self._respond(reply, outcome),
                SampleSource(device, request.request_id, request.captured_at_ms)
                if request.share_for_training
                else None,
            )
        except Overloaded as exc:
            self._refuse(reply, Status.RESOURCE_EXHAUSTED, str(exc))

    def _reply_to(
        self,
        message: InboundMessage,
        device: str,
        wire: WireFormat,
        received_at: float,
        request_id: str = "",
        captured_at_ms: int = 0,
        faces: int = 0,
    ) -> _ReplyTo:
        topic, ignored = self._topics.response(device, message.response_topic)
        if ignored:
            _LOGGER.info(
                "answering %s on its result topic, not on Response Topic %r (%s)",
                device,
                message.response_topic[:200],
                ignored,
            )
            self._metrics.response_topics_ignored.labels(ignored).inc()
        return _ReplyTo(
            message=message,
            device=device,
            request_id=request_id,
            captured_at_ms=captured_at_ms,
            wire=wire,
            topic=topic,
            correlation=message.correlation_data,
            received_at=received_at,
            faces=faces,
        )

    def _reject(self, reply: _ReplyTo, reason: str, error: str) -> None:
        _LOGGER.info("invalid request from %s: %.300s", reply.device, error)
        self._metrics.rejected.labels(FRONTDOOR, reason).inc()
        self._refuse(reply, Status.INVALID_ARGUMENT, error)

    def _refuse(self, reply: _ReplyTo, status: Status, error: str) -> None:
        """Answer without inference, naming the model serving now."""
        self._respond(reply, Outcome(status, self._service.model.ref, error=error))

    def _respond(self, reply: _ReplyTo, outcome: Outcome) -> None:
        elapsed = self._clock() - reply.received_at
        response = Response(  # positional: once a request, keywords cost a third more
            reply.request_id,
            reply.device,
            outcome.status,
            outcome.error,
            outcome.model,
            outcome.results,
            Timings(
                int(outcome.queue_s * 1e6),  # queue_us
                int(outcome.inference_s * 1e6),  # inference_us
                int(elapsed * 1e6),  # total_us
                outcome.batch_faces,  # batch_size
            ),
            reply.captured_at_ms,
        )
        if outcome.refinement:  # the cloud's answer after the edge's: its request is acked
            self._recent.finish(reply.device, reply.request_id, response, reply.faces)
            self._send(reply, response, ack=False)
            return
        self._requests[outcome.status].inc()
        self._request_seconds.observe(elapsed)
        self._recent.finish(reply.device, reply.request_id, response, reply.faces)
        self._send(reply, response)

    def _send(self, reply: _ReplyTo, response: Response, *, ack: bool = True) -> None:
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
            self._transport.send(
                reply.topic,
                payload,
                content_type=reply.wire.content_type,
                correlation_data=reply.correlation,
            )
        except ValueError as exc:  # a topic no broker would take
            self._metrics.publish_failures.inc()
            _LOGGER.warning("cannot answer %s on %.200s: %s", reply.device, reply.topic, exc)
        if ack:
            self._transport.ack(reply.message)
