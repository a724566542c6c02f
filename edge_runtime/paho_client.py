"""paho-mqtt's client, with the hot path's packets kept out of paho's Python.

The only module that touches paho's private members. paho reads each packet with three or
four ``recv`` calls and builds a Python object per packet; at thousands of requests per second
that was a large share of the runtime's CPU (bench/results/profiles/). Here one ``recv`` fills
a buffer that ``next_packet`` cuts whole packets from: the transport reads PUBLISH and PUBACK
itself (edge_runtime.wire) and hands every other packet to paho, which reads it from the same
buffer (``read_packet``). ``send_raw`` writes bytes the transport built (answers and acks of a
loop turn in one ``send``), behind anything paho already queued, so the order on the wire is the
order of the calls. paho still connects, subscribes, pings, publishes the runtime's status and
closes; its own queued packets leave joined in one write (``loop_write``).

The private members used (``HOOK_METHODS``, ``HOOK_ATTRIBUTES``) are checked at import and
when a client is made: a paho release that renames them fails there, naming what is missing,
rather than half working, and tests/edge_runtime/test_paho_contract.py pins their shapes. paho
is pinned below 2.3.
"""

from __future__ import annotations

import collections
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import DISCONNECT, PUBACK, PUBLISH
from paho.mqtt.enums import MQTTErrorCode

from edge_runtime import wire

# paho internals this module relies on: methods of Client, and the attribute holding the queue
# of packets to write (a deque of dicts, see _joined).
HOOK_METHODS = (
    "_sock_recv",
    "_packet_read",
    "_loop_rc_handle",
    "_packet_queue",
    "_mid_generate",
    "_call_socket_register_write",
)
HOOK_ATTRIBUTES = ("_out_packet", "_out_messages", "_in_packet", "_last_bytes_received")
PACKET_KEYS = frozenset({"command", "mid", "qos", "pos", "to_process", "packet", "info"})


def _hooks_present() -> bool:
    return all(callable(getattr(mqtt.Client, name, None)) for name in HOOK_METHODS)


_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


HOOKS = _hooks_present()
if not HOOKS:  # pragma: no cover - only with an unexpected paho
    raise ImportError(
        f"this paho-mqtt lacks one of {', '.join(HOOK_METHODS)}: edge_runtime needs "
        "paho-mqtt>=2.1,<2.3"
    )


class PahoClient(mqtt.Client):
    """paho's client with a shared read buffer and raw writes (see the module's docstring)."""

    _READ_SIZE = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = b""
        self._offset = 0
        missing = [name for name in HOOK_ATTRIBUTES if not hasattr(self, name)]
        if missing or not isinstance(self._out_packet, collections.deque):  # pragma: no cover
            raise RuntimeError(f"this paho-mqtt's client lacks {missing or '_out_packet deque'}")

    def discard_buffer(self) -> None:
        """Forget unparsed bytes (a new connection starts)."""
        self._buffer, self._offset = b"", 0

    def read_packet(self) -> MQTTErrorCode:
        """Let paho read and handle at most one packet.

        Returns:
            ``MQTT_ERR_SUCCESS`` after a packet, ``MQTT_ERR_AGAIN`` when the socket had too
            little for one, anything else when the connection failed (paho has handled it).
        """
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        rc: MQTTErrorCode = self._packet_read()
        if rc > 0:
            handled: MQTTErrorCode = self._loop_rc_handle(rc)
            return handled
        return rc

    def next_packet(self) -> tuple[bytes, int, int, int] | bool:
        """The next whole packet in the read buffer, reading the socket when it has none.

        Returns:
            ``(buffer, start, body, end)`` of a packet, not yet consumed (``consume`` takes
            it, ``read_packet`` gives it to paho); False when no whole packet can be had
            without waiting; True when paho must read (a packet split across its own reads,
            a closed or failed connection, bytes that are not MQTT): ``read_packet`` then.
        """
        if self._in_packet["command"] != 0:
            return True
        while True:
            try:
                body, end = wire.frame(self._buffer, self._offset)
            except wire.Malformed:
                return True
            if end:
                return self._buffer, self._offset, body, end
            sock = self._sock
            if sock is None:
                return True
            try:
                data = sock.recv(self._READ_SIZE)
            except ssl.SSLWantWriteError:
                self._call_socket_register_write()  # TLS must write before it reads, as paho does
                return False
            except _WOULD_BLOCK:
                return False
            except OSError:
                return True
            if not data:
                return True  # closed by the broker: paho reads the end and reports it
            self._last_bytes_received = mqtt.time_func()
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = data, 0
            else:
                self._buffer, self._offset = self._buffer[self._offset :] + data, 0

    def consume(self, end: int) -> None:
        """Mark the buffer read up to ``end`` (a packet the transport handled itself)."""
        self._offset = end

    def fresh_mid(self, taken: dict[int, Any]) -> int:
        """A packet identifier in use neither by paho's publishes nor in ``taken``."""
        while True:
            mid: int = self._mid_generate()
            if mid not in taken and mid not in self._out_messages:
                return mid

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` (whole packets) now, after anything paho has queued before it.

        What the socket does not take at once is queued for paho's writer, in order.
        """
        sock = self._sock
        if sock is None:
            return
        if self._out_packet:
            self._packet_queue(PUBACK, data, 0, 1)  # written behind paho's, like a PUBACK
            return
        try:
            sent = sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        except OSError:
            sent = 0  # paho's writer meets the same error and reports the lost connection
        self._last_msg_out = mqtt.time_func()
        if sent < len(data):
            self._packet_queue(PUBACK, data[sent:], 0, 1)

    def loop_write(self) -> MQTTErrorCode:
        """Write queued packets, those that need no per-packet callback joined into one send."""
        _coalesce(self._out_packet)
        return super().loop_write()

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._offset >= len(self._buffer):
            self._buffer, self._offset = super()._sock_recv(self._READ_SIZE), 0
            if not self._buffer:
                return b""  # the broker closed the connection
        chunk = self._buffer[self._offset : self._offset + bufsize]
        self._offset += len(chunk)
        return chunk


def _coalesce(queue: collections.deque[Any]) -> None:
    """Join queued packets into one write: paho sends each packet with its own send()."""
    if len(queue) < 2:
        return
    merged: list[Any] = []
    run: list[bytes] = []
    for packet in queue:
        command = packet["command"] & 0xF0
        plain = (
            packet["pos"] == 0
            and command != DISCONNECT
            and not (command == PUBLISH and packet["qos"] == 0)
        )
        if plain:
            run.append(packet["packet"])
            continue
        if run:
            merged.append(_joined(run))
            run = []
        merged.append(packet)
    if run:
        merged.append(_joined(run))
    queue.clear()
    queue.extend(merged)


def _joined(packets: list[bytes]) -> dict[str, Any]:
    """A queue entry paho writes like one PUBACK (no callback), carrying several packets."""
    data = b"".join(packets)
    return {
        "command": PUBACK,
        "mid": 0,
        "qos": 1,
        "pos": 0,
        "to_process": len(data),
        "packet": data,
        "info": None,
    }
