"""MQTT v5 transport: paho-mqtt's protocol engine on the asyncio event loop, with a hot path.

Manual acknowledgement lets the runtime acknowledge a request only after its answer is
published, so a crash or restart loses nothing (the broker redelivers unacknowledged messages
of the persistent session). The socket is watched by the event loop itself (``add_reader``,
``add_writer``; paho's ``loop_misc`` each second): paho's own network thread cost more CPU
per request (docs/benchmarks.md). Only the blocking TCP and TLS connect runs in a worker
thread.

The packets of every request, PUBLISH in, PUBACK out, the answer's PUBLISH out and its PUBACK
in, never become paho objects: they are read from and written to the socket as bytes
(``edge_runtime.wire``), and everything written in one loop turn leaves in one ``send``. paho
connects, subscribes, keeps alive and carries the low-rate publishes (``publish_nowait``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_runtime import wire
from edge_runtime.errors import BrokerUnavailable, ConfigError
from edge_runtime.paho_client import PahoClient
from edgeinfer.broker import Broker, set_socket_options

_LOGGER = logging.getLogger(__name__)
_CLOSE_TIMEOUT_S = 2.0


class InboundMessage(NamedTuple):
    """A message delivered by the broker.

    A NamedTuple: one is made per message, 3x cheaper than a frozen dataclass.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    content_type: str
    response_topic: str
    correlation_data: bytes | None
    generation: int  # connection count when received; acks of older ones are void


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will the broker publishes if the connection is lost."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Credentials:
    """Optional user name, password and TLS files."""

    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def _nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    set_socket_options(sock)


def _publish_properties(content_type: str) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call] # paho
    if content_type:
        properties.ContentType = content_type
    return properties


# Read-only once made: paho only packs a message's properties (again, when it resends).
_SHARED_CONTENT_TYPES: dict[str, Properties] = {}


class AckSequencer:
    """Sends PUBACKs in the order the PUBLISHes arrived [MQTT-4.6.0-2].

    Args:
        send: Sends the PUBACK of one packet id.
    """

    def __init__(self, send: Callable[[int], None]) -> None:
        self._send = send
        self._pending: collections.OrderedDict[int, bool] = collections.OrderedDict()

    def received(self, mid: int) -> None:
        """A PUBLISH with packet id ``mid`` arrived."""
        self._pending[mid] = False

    def done(self, mid: int) -> None:
        """``mid`` may be acknowledged: send it and every later one already done, in order."""
        if mid not in self._pending:
            return
        self._pending[mid] = True
        while self._pending:
            head, finished = next(iter(self._pending.items()))
            if not finished:
                break
            self._pending.popitem(last=False)
            self._send(head)

    def reset(self) -> None:
        """Forget everything (the connection was lost: its acks are void)."""
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)


class TurnWriter:
    """Packets queued during one event-loop turn leave in one write (one syscall, one segment).

    Args:
        write: Writes bytes to the socket.
        call_soon: Schedules a callback for the end of this loop turn.
    """

    def __init__(
        self, write: Callable[[bytes], None], call_soon: Callable[[Callable[[], None]], object]
    ) -> None:
        self._write = write
        self._call_soon = call_soon
        self._packets: list[bytes] = []
        self._scheduled = False

    def add(self, packet: bytes) -> None:
        """Queue ``packet`` for this turn's write."""
        self._packets.append(packet)
        if not self._scheduled:
            self._scheduled = True
            self._call_soon(self.flush)

    def flush(self) -> None:
        """Write what is queued, joined."""
        self._scheduled = False
        if not self._packets:
            return
        data = b"".join(self._packets) if len(self._packets) > 1 else self._packets[0]
        self._packets.clear()
        self._write(data)

    def clear(self) -> None:
        """Drop what is queued (a lost connection's acks are void; publishes are resent)."""
        self._packets.clear()


class MqttTransport:
    """An MQTT v5 client with a persistent session, in-order manual acks and reconnects.

    Args:
        broker: Broker URL.
        client_id: Stable client id (the session is keyed by it).
        subscriptions: Topic filters and QoS, (re)subscribed on every connect.
        will: Optional Last Will.
        credentials: Optional user name, password and TLS files.
        keepalive_s: MQTT keepalive.
        session_expiry_s: How long the broker keeps the session after a disconnect;
            0 with ``clean_start`` gives a throw-away session.
        clean_start: Start a new session instead of resuming one.
        manual_ack: Acknowledge QoS 1 messages only when ``ack`` is called.
        reconnect_min_s: Smallest reconnect delay; jittered, doubles up to the max.
        reconnect_max_s: Largest reconnect delay.
        connect_timeout_s: Give up one TCP/TLS connection attempt after this.
        receive_maximum: MQTT v5 Receive Maximum: the broker sends at most this many QoS 1
            messages that are not yet acknowledged (0: the protocol's default, 65535). With
            manual acks this bounds what waits in this process; the rest waits at the broker.
            With manual acks the transport also stops reading the socket while this many are
            held: mosquitto 2.0.11 exceeds a client's Receive Maximum once acks flow (measured:
            1,800 unacknowledged of 3,000 sent with a maximum of 64; 1.6.15 kept to it).
        max_outgoing_inflight: QoS 1 publishes paho sends before their PUBACKs come (0: no
            limit, every publish goes out at once and in call order; paho's default 20).
        on_connect: Called on the event loop after every successful (re)connect.
        on_send_failed: Called with the reason code when the broker refuses a ``send``.
    """

    def __init__(
        self,
        broker: str,
        *,
        client_id: str,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: Will | None = None,
        credentials: Credentials | None = None,
        keepalive_s: int = 30,
        session_expiry_s: int = 3600,
        clean_start: bool = False,
        manual_ack: bool = False,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        receive_maximum: int = 0,
        max_outgoing_inflight: int = 20,
        on_connect: Callable[[], None] | None = None,
        on_send_failed: Callable[[int], None] | None = None,
    ) -> None:
        self._receive_maximum = receive_maximum
        self._on_send_failed = on_send_failed
        # QoS 1 publishes of ``send`` awaiting their PUBACK: packet, and whether it was written.
        self._unconfirmed: dict[int, list[Any]] = {}
        self._confirmed = asyncio.Event()
        self._confirmed.set()
        self._outgoing = TurnWriter(self._send_raw, self._call_soon)
        self._on_connect_callback = on_connect
        try:
            self._address = Broker.parse(broker)
        except ValueError as exc:
            raise ConfigError("mqtt.broker", broker, str(exc)) from exc
        self._client_id = client_id
        self._subscriptions = list(subscriptions)
        self._keepalive_s = keepalive_s
        self._session_expiry_s = session_expiry_s
        self._clean_start = clean_start
        self._manual_ack = manual_ack
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading: int | None = None  # the socket's fd while the loop watches it for reads
        self._loop_thread = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._socket_closed = asyncio.Event()
        self._socket_closed.set()
        self._delay_s = reconnect_min_s
        self._inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self._published: dict[int, asyncio.Future[None]] = {}
        self._generation = 0
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()
        self._closing = False
        self._will_on_close = False
        self._client = PahoClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        self._acks = AckSequencer(lambda mid: self._write(wire.puback(mid)))
        creds = credentials or Credentials()
        if creds.username:
            self._client.username_pw_set(creds.username, creds.password or None)
        if self._address.tls:
            self._client.tls_set(
                ca_certs=creds.ca_file or None,
                certfile=creds.cert_file or None,
                keyfile=creds.key_file or None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._client.connect_timeout = connect_timeout_s
        self._client.max_inflight_messages_set(max_outgoing_inflight)
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe

    @property
    def client_id(self) -> str:
        """The MQTT client id."""
        return self._client_id

    @property
    def endpoint(self) -> str:
        """host:port of the broker, for log lines."""
        return f"{self._address.host}:{self._address.port}"

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho
        properties.SessionExpiryInterval = self._session_expiry_s
        if self._receive_maximum:
            properties.ReceiveMaximum = self._receive_maximum
        # Records where and how to connect; the supervisor connects (and reconnects).
        self._client.connect_async(
            self._address.host,
            self._address.port,
            keepalive=self._keepalive_s,
            clean_start=self._clean_start,
            properties=properties,
        )
        self._supervisor = self._loop.create_task(
            self._supervise(), name=f"mqtt[{self._client_id}]"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        if self.connected.is_set():
            # A normal DISCONNECT: the broker keeps the session but does not send the Will,
            # unless asked to with MQTT 5's reason 0x04 (as if the connection had been lost).
            reason = None
            if self._will_on_close:
                reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            self._client.disconnect(reasoncode=reason)
            # paho closes the socket once the DISCONNECT is written.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self._socket_closed.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        sock = self._client.socket()
        if sock is not None:  # the broker never read our DISCONNECT
            self._on_socket_close(self._client, None, sock)
            sock.close()
        for future in self._published.values():
            future.cancel()
        self._published.clear()
        self._unconfirmed.clear()
        self._outgoing.clear()
        self._confirmed.set()

    async def _supervise(self) -> None:
        """Connect, run paho's keepalive each second, and reconnect with jittered backoff."""
        client = self._client
        while True:
            self._socket_closed.clear()
            try:
                # Blocking TCP connect and TLS handshake; paho then queues CONNECT.
                await asyncio.to_thread(client.reconnect)
            except (OSError, mqtt.WebsocketConnectionError) as exc:
                self._socket_closed.set()
                _LOGGER.debug("cannot reach broker %s: %s", self.endpoint, exc)
            while not self._socket_closed.is_set():
                client.loop_misc()  # pings, and closes a connection whose pings go unanswered
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._socket_closed.wait()
            low = self._reconnect[0]
            # A random delay around the current one spreads a fleet's reconnects out.
            await asyncio.sleep(random.uniform(self._delay_s / 2, self._delay_s * 1.5))  # noqa: S311
            self._delay_s = min(self._reconnect[1], max(low, self._delay_s * 2))

    def send_will_on_close(self) -> None:
        """Make the coming close publish the Last Will, as a lost connection would."""
        self._will_on_close = True

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait for the broker's CONNACK and SUBACK.

        Raises:
            BrokerUnavailable: if it does not come within ``timeout_s``.
        """
        try:
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
                await self.subscribed.wait()
        except TimeoutError:
            raise BrokerUnavailable(f"broker {self.endpoint} unavailable") from None

    # socket events: paho's socket on the event loop

    def _on_loop(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback`` on the event loop: now if this is its thread, else soon."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:  # paho's connect, in the supervisor's worker thread
            loop.call_soon_threadsafe(callback, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        _nodelay(client, userdata, sock)
        self._client.discard_buffer()
        self._on_loop(self._watch, sock)

    def _watch(self, sock: Any) -> None:
        if self._closing:  # a connect that finished after close: nobody will read it
            sock.close()
        elif self._loop is not None and sock.fileno() >= 0:
            self._reading = sock.fileno()
            self._loop.add_reader(self._reading, self._readable)

    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._on_loop(self._unwatch, sock.fileno())

    def _unwatch(self, fileno: int) -> None:
        self._outgoing.clear()  # acks of a lost connection are void; publishes are resent
        if fileno == self._reading:
            self._reading = None
        if self._loop is not None and fileno >= 0:
            self._loop.remove_reader(fileno)
            self._loop.remove_writer(fileno)
        self._socket_closed.set()

    def _on_register_write(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._on_loop(self._want_write, sock.fileno())

    def _want_write(self, fileno: int) -> None:
        if self._loop is not None and fileno >= 0 and self._client.socket() is not None:
            self._loop.add_writer(fileno, self._writable)

    def _on_unregister_write(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        if self._loop is not None and sock.fileno() >= 0:
            self._loop.remove_writer(sock.fileno())

    def _readable(self) -> None:
        client = self._client
        try:
            while not self._full():
                head = client.next_packet()
                if head is False:
                    break
                if head is True:  # paho reads: split packet, closed connection, not MQTT
                    if client.read_packet() != mqtt.MQTT_ERR_SUCCESS:
                        break
                    continue
                buffer, start, body, end = head
                kind = buffer[start] & 0xF0
                if kind == wire.PUBLISH and buffer[start] & 0x06 != 0x04:  # QoS 0 or 1
                    packet = wire.read_publish(memoryview(buffer)[start:end])
                    if packet is not None:
                        client.consume(end)
                        self._received(packet)
                        continue
                elif kind == wire.PUBACK and end - body >= 2:
                    mid, reason = wire.puback_of(memoryview(buffer)[body:end])
                    if mid in self._unconfirmed:
                        client.consume(end)
                        self._confirm(mid, reason)
                        continue
                if client.read_packet() != mqtt.MQTT_ERR_SUCCESS:
                    break
        except Exception:
            _LOGGER.exception("error handling data from broker %s", self.endpoint)
        if self._full() and self._loop is not None and self._reading is not None:
            # Flow control: the rest waits in the socket and at the broker until acks free room.
            self._loop.remove_reader(self._reading)

    def _received(self, packet: Any) -> None:
        """A PUBLISH the hot path read (QoS 0 or 1)."""
        qos = 1 if packet.qos == 1 else 0
        mid = packet.packet_id or 0
        if qos:
            if self._manual_ack:
                self._acks.received(mid)
            else:
                self._write(wire.puback(mid))
        correlation = packet.correlation_data
        self._inbox.put_nowait(
            InboundMessage(
                packet.topic,
                packet.payload,
                qos,
                packet.retain,
                mid,
                packet.content_type or "",
                packet.response_topic or "",
                correlation,
                self._generation,
            )
        )

    def _confirm(self, mid: int, reason: int) -> None:
        """The broker's PUBACK of a ``send``."""
        del self._unconfirmed[mid]
        if not self._unconfirmed:
            self._confirmed.set()
        if reason >= 0x80:
            _LOGGER.warning("broker %s refused a publish: reason 0x%02x", self.endpoint, reason)
            if self._on_send_failed is not None:
                self._on_send_failed(reason)

    def _write(self, packet: bytes) -> None:
        """Queue a packet for this loop turn's one write."""
        self._outgoing.add(packet)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        if self._loop is not None:
            self._loop.call_soon(callback)
        else:  # not started: nothing is connected, so the write is dropped now
            callback()

    def _send_raw(self, data: bytes) -> None:
        if self.connected.is_set():
            try:
                self._client.send_raw(data)
            except Exception:
                _LOGGER.exception("error writing to broker %s", self.endpoint)

    def _full(self) -> bool:
        return bool(self._receive_maximum) and len(self._acks) >= self._receive_maximum

    def _resume_reading(self) -> None:
        """After acks freed room: watch the socket again and take what was already read.

        Bytes in the read buffer, or decrypted by TLS, are not signalled by the socket again.
        """
        if self._full() or self._loop is None or self._reading is None:
            return
        self._loop.add_reader(self._reading, self._readable)
        self._loop.call_soon(self._readable)

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception:
            _LOGGER.exception("error writing to broker %s", self.endpoint)

    # paho callbacks: all on the event loop (loop_read runs there)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        if reason.is_failure:
            _LOGGER.error("broker %s refused connection: %s", self.endpoint, reason)
            return
        if self._subscriptions:
            client.subscribe([(topic, qos) for topic, qos in self._subscriptions])
        else:
            self._subscribed_all()
        self._connected()

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: Any, _props: Any
    ) -> None:
        if any(code.is_failure for code in codes):
            _LOGGER.error("broker %s refused a subscription: %s", self.endpoint, codes)
        self._subscribed_all()

    def _subscribed_all(self) -> None:
        self.subscribed.set()

    def _connected(self) -> None:
        self._delay_s = self._reconnect[0]
        self._generation += 1
        self._acks.reset()
        self._outgoing.clear()
        self.connected.set()
        # The session's unconfirmed publishes go again, as paho does with its own [MQTT-4.4.0-1].
        for entry in self._unconfirmed.values():
            packet, written = entry
            self._write(wire.redelivery(packet) if written else packet)
            entry[1] = True
        _LOGGER.warning("connected to broker %s as %s", self.endpoint, self._client_id)
        if self._on_connect_callback is not None:
            self._on_connect_callback()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if was_connected and not self._closing:
            _LOGGER.warning("lost broker %s (%s); reconnecting", self.endpoint, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None)
        if self._manual_ack and msg.qos > 0:
            self._acks.received(msg.mid)
        self._inbox.put_nowait(
            InboundMessage(
                msg.topic,
                bytes(msg.payload),
                msg.qos,
                bool(msg.retain),
                msg.mid,
                getattr(props, "ContentType", "") or "",
                getattr(props, "ResponseTopic", "") or "",
                bytes(correlation) if correlation is not None else None,
                self._generation,
            )
        )

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason: ReasonCode,
        _props: Any,
    ) -> None:
        future = self._published.pop(mid, None)
        if future is None or future.done():
            return
        if reason.is_failure:
            future.set_exception(BrokerUnavailable(f"publish refused by broker: {reason}"))
        else:
            future.set_result(None)

    # event loop API

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str = "",
        correlation_data: bytes | None = None,
        response_topic: str = "",
    ) -> asyncio.Future[None]:
        """Queue a publish; the future completes when the broker acknowledges it (QoS 1).

        While disconnected, paho keeps QoS 1 messages and sends them after reconnecting.

        Raises:
            ValueError: paho refuses the topic or a property (a wildcard, an empty topic).
        """
        properties: Properties | None = None
        if correlation_data is not None or response_topic:
            properties = _publish_properties(content_type)
            if correlation_data is not None:
                properties.CorrelationData = correlation_data
            if response_topic:
                properties.ResponseTopic = response_topic
        elif content_type:
            properties = _SHARED_CONTENT_TYPES.get(content_type)
            if properties is None:  # paho's Properties are slow to build: one per content type
                properties = _SHARED_CONTENT_TYPES[content_type] = _publish_properties(content_type)
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            future.set_exception(BrokerUnavailable(f"publish failed: {mqtt.error_string(info.rc)}"))
        elif qos == 0:
            future.set_result(None)
        else:
            # PUBACKs are read on this loop, so on_publish cannot run before this line.
            self._published[info.mid] = future
        return future

    def send(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str = "",
        correlation_data: bytes | None = None,
    ) -> None:
        """Publish at QoS 1 on the hot path: no future, written with this loop turn's packets.

        ``confirmed()`` waits for the PUBACKs; a refusal goes to ``on_send_failed``. While
        disconnected the publish waits and goes out after the reconnect.

        Raises:
            ValueError: the topic is empty, too long or holds a wildcard.
        """
        mid = self._client.fresh_mid(self._unconfirmed)
        packet = wire.publish(topic, payload, mid, content_type, correlation_data)
        written = self.connected.is_set()
        self._unconfirmed[mid] = [packet, written]
        self._confirmed.clear()
        if written:
            self._write(packet)

    async def confirmed(self) -> None:
        """Wait until the broker has acknowledged every ``send`` so far."""
        await self._confirmed.wait()

    @property
    def unconfirmed(self) -> int:
        """``send`` publishes the broker has not acknowledged yet."""
        return len(self._unconfirmed)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str = "",
        correlation_data: bytes | None = None,
        response_topic: str = "",
    ) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1)."""
        await self.publish_nowait(
            topic,
            payload,
            qos=qos,
            retain=retain,
            content_type=content_type,
            correlation_data=correlation_data,
            response_topic=response_topic,
        )

    def ack(self, message: InboundMessage) -> None:
        """Acknowledge a message taken with manual acks (in arrival order)."""
        if not self._manual_ack or message.qos == 0 or message.generation != self._generation:
            return
        was_full = self._full()
        self._acks.done(message.mid)
        if was_full:
            self._resume_reading()

    @property
    def connections(self) -> int:
        """Successful connects so far (a reconnect adds one)."""
        return self._generation

    @property
    def unacked(self) -> int:
        """Messages received but not yet acknowledged."""
        return len(self._acks)

    async def messages(self) -> AsyncIterator[InboundMessage]:
        """Messages from every subscription, in arrival order."""
        while True:
            yield await self._inbox.get()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Add a subscription (kept across reconnects)."""
        self._subscriptions.append((topic, qos))
        if self.connected.is_set():
            self._client.subscribe(topic, qos=qos)
