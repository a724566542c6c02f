"""Where a program finds the MQTT broker, and how its socket is set: one reading for all.

``mqtt://host:port`` (default port 1883) or ``mqtts://host:port`` (TLS, default 8883); ``tcp://``
and ``ssl://`` are accepted as their aliases (edgecore's own config writes ``tcp://``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

PLAIN = frozenset({"mqtt", "tcp"})
TLS = frozenset({"mqtts", "ssl"})

# Small request/response messages: without TCP_NODELAY, Nagle and the peer's delayed ACK stall
# each QoS 1 exchange by about 40 ms.
SOCKET_OPTIONS: tuple[tuple[int, int, int], ...] = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


@dataclass(frozen=True, slots=True)
class Broker:
    """A broker's address."""

    host: str
    port: int
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> Broker:
        """Read a broker URL.

        Raises:
            ValueError: for anything but ``mqtt://host[:port]`` or ``mqtts://host[:port]``.
        """
        parts = urlsplit(url)
        if parts.scheme not in PLAIN | TLS or not parts.hostname:
            raise ValueError(f"expected mqtt://host:port or mqtts://host:port, not {url!r}")
        tls = parts.scheme in TLS
        try:
            port = parts.port
        except ValueError as exc:  # a port out of range or not a number
            raise ValueError(f"bad port in {url!r}") from exc
        return cls(parts.hostname, port or (8883 if tls else 1883), tls)

    @property
    def url(self) -> str:
        """The URL again, scheme ``mqtt`` or ``mqtts``."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def tcp(self) -> str:
        """``tcp://host:port`` (edgecore's ``mqttServerExternal`` form; plain only)."""
        return f"tcp://{self.host}:{self.port}"


def set_socket_options(sock: socket.socket) -> None:
    """Apply ``SOCKET_OPTIONS`` to a connected socket."""
    for level, option, value in SOCKET_OPTIONS:
        sock.setsockopt(level, option, value)
