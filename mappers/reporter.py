"""Reports a device's actual values to edgecore on change, at most once per interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from kubeedge_twin import TwinFormatError
from mappers.metrics import MapperMetrics
from mappers.profile import MappedDevice

_LOGGER = logging.getLogger(__name__)

Send = Callable[[Mapping[str, str]], Awaitable[None]]


class BoundedReporter:
    """Coalesces value changes and sends them no more often than ``interval_s``.

    Args:
        device: The device (values for twins it does not have are dropped).
        send: Publishes a batch of changed values.
        interval_s: Least time between two sends.
    """

    def __init__(self, device: MappedDevice, send: Send, interval_s: float) -> None:
        self._device = device
        self._send = send
        self._interval_s = interval_s
        self._sent: dict[str, str] = {}
        self._pending: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._last = float("-inf")

    def offer(self, values: Mapping[str, str]) -> None:
        """Queue the values that differ from what was last sent."""
        for name, value in values.items():
            if name in self._device.twins and self._sent.get(name) != value:
                self._pending[name] = value
            elif name in self._pending and self._sent.get(name) == value:
                del self._pending[name]
        if self._pending:
            self._changed.set()

    def forget(self) -> None:
        """Send everything again on the next offer (after a reconnect edgecore may have lost it)."""
        self._sent.clear()

    async def run(self) -> None:
        """Send changes as they come, spaced by the interval."""
        while True:
            await self._changed.wait()
            await asyncio.sleep(max(0.0, self._last + self._interval_s - time.monotonic()))
            self._changed.clear()
            batch, self._pending = self._pending, {}
            if not batch:
                continue
            self._last = time.monotonic()
            await self._send(batch)
            self._sent.update(batch)


async def publish_safely(
    metrics: MapperMetrics, kind: str, send: Callable[[], Awaitable[None]]
) -> None:
    """Publish, counting it; a value KubeEdge would refuse is logged and counted, not fatal."""
    try:
        await send()
    except TwinFormatError as exc:
        _refused(metrics, kind, exc)
        return
    metrics.reported(kind)


def hand_over(metrics: MapperMetrics, kind: str, send: Callable[[], asyncio.Future[None]]) -> None:
    """Hand a report to the twin, not awaited.

    The DMI twin sends it on its device's turn (edgecore takes about one call a second for the
    whole node), the MQTT one when the broker takes it; a value KubeEdge would refuse is counted
    and logged, not fatal.
    """
    try:
        future = send()
    except TwinFormatError as exc:
        _refused(metrics, kind, exc)
        return
    future.add_done_callback(_ignore)
    metrics.reported(kind)


def _refused(metrics: MapperMetrics, kind: str, exc: TwinFormatError) -> None:
    metrics.refused(f"{kind}_value")
    _LOGGER.warning("not reporting %s: %s", kind, exc)


def _ignore(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
