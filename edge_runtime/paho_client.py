"""paho-mqtt's client with fewer system calls per packet and one packet per read.

The only module that touches paho's private members. paho reads each packet with three or
four ``recv`` calls (type byte, length bytes one at a time, body) and sends each packet with its
own ``send``; at hundreds of requests per second those calls were a large share of the
runtime's CPU (bench/). Here one ``recv`` fills a buffer the next packets are cut from, and
packets queued together leave in one ``send``. And ``loop_read`` reads as many packets as
messages are in flight (hundreds, with answers awaiting their PUBACKs), which would overrun the
transport's flow control: ``read_packet`` reads one.

The private members used (``HOOKS``) are checked at import: if a paho release renames them,
the client falls back to paho's public behaviour (slower, and reading may overshoot the flow
control limit by what one ``loop_read`` takes), and tests/edge_runtime/test_paho_contract.py
fails so that the change is noticed. paho is pinned below 2.3.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import DISCONNECT, PUBACK, PUBLISH
from paho.mqtt.enums import MQTTErrorCode

_LOGGER = logging.getLogger(__name__)

# paho internals this module relies on: methods of Client, and the attribute holding the queue
# of packets to write (a deque of dicts, see _joined).
HOOK_METHODS = ("_sock_recv", "_packet_read", "_loop_rc_handle")
HOOK_ATTRIBUTES = ("_out_packet",)
PACKET_KEYS = frozenset({"command", "mid", "qos", "pos", "to_process", "packet", "info"})


def _hooks_present() -> bool:
    return all(callable(getattr(mqtt.Client, name, None)) for name in HOOK_METHODS)


HOOKS = _hooks_present()
if not HOOKS:  # pragma: no cover - only with an unexpected paho
    _LOGGER.warning("paho-mqtt %s lacks %s: using its public paths", mqtt.__name__, HOOK_METHODS)


class PahoClient(mqtt.Client):
    """paho's client, reading and writing with fewer system calls (see the module's docstring)."""

    _READ_SIZE = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = b""
        self._offset = 0
        self._fast_write = HOOKS and isinstance(
            getattr(self, "_out_packet", None), collections.deque
        )

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet parsed."""
        return len(self._buffer) - self._offset

    def discard_buffer(self) -> None:
        """Forget unparsed bytes (a new connection starts)."""
        self._buffer, self._offset = b"", 0

    def read_packet(self) -> MQTTErrorCode:
        """Read and handle at most one packet; ``MQTT_ERR_SUCCESS`` unless the connection failed."""
        if not HOOKS:
            return self.loop_read()
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        rc: MQTTErrorCode = self._packet_read()
        if rc > 0:
            handled: MQTTErrorCode = self._loop_rc_handle(rc)
            return handled
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_write(self) -> MQTTErrorCode:
        """Write queued packets, those that need no per-packet callback joined into one send."""
        if self._fast_write:
            _coalesce(self._out_packet)
        return super().loop_write()

    def _sock_recv(self, bufsize: int) -> bytes:
        if not HOOKS:  # pragma: no cover - paho without the hook never calls this
            return super()._sock_recv(bufsize)
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
