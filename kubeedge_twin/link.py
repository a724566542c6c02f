"""One device's twin as a program holds it, whatever carries it: ``TwinLink``.

KubeEdge 1.4-1.14 carries twins over MQTT (``TwinClient``: the owner subscribes to its
``subscriptions`` and routes messages to ``handle``); 1.15+ over DMI (``DmiTwin``: edgecore calls
the mapper; nothing to subscribe to). Programs hold a ``TwinLink`` and never ask which one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from kubeedge_twin.topics import DeviceRef


class TwinLink(Protocol):
    """A device twin: desired values in, reported values and state out."""

    @property
    def device(self) -> DeviceRef:
        """The device."""
        ...

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        """MQTT topic filters the owner must subscribe to (none over DMI)."""
        ...

    def handle(self, topic: str, payload: bytes) -> bool:
        """Take an inbound MQTT message; False if it is not this twin's (always, over DMI)."""
        ...

    @property
    def bad_messages(self) -> int:
        """Inbound twin messages that were malformed (counted, never fatal)."""
        ...

    def desired(self) -> AsyncIterator[dict[str, str]]:
        """Every desired value of the device, each time one of them changes."""
        ...

    def current(self) -> dict[str, str] | None:
        """The desired values known last (None before any came)."""
        ...

    def report(
        self, values: Mapping[str, str], types: Mapping[str, str] | None = None
    ) -> asyncio.Future[None]:
        """Report actual values; the future completes when edgecore (or the broker) has them.

        Raises:
            TwinFormatError: if a value breaks KubeEdge's value pattern.
        """
        ...

    def report_state(self, state: str) -> asyncio.Future[None]:
        """Report the device's state (``online``, ``offline``, ...)."""
        ...

    async def resync(self) -> None:
        """Make sure the desired values known are edgecore's (after a reconnect).

        Over MQTT: ask until edgecore answers. Over DMI there is nothing to ask (edgecore calls).
        """
        ...
