"""An async DeviceTwin client for one device, independent of the MQTT library.

The owner routes inbound messages to ``handle`` and gives a ``publish`` callable; the
client subscribes to nothing itself (``subscriptions`` lists what it needs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from kubeedge_twin.messages import (
    Delta,
    MsgTwin,
    TwinFormatError,
    TwinMessage,
    desired_values,
    error_of,
    get_request,
    loads,
    new_event_id,
    report,
    state_update,
)
from kubeedge_twin.topics import (
    STATE_UPDATE,
    TWIN_GET,
    TWIN_GET_RESULT,
    TWIN_UPDATE,
    TWIN_UPDATE_DELTA,
    TWIN_UPDATE_RESULT,
    DeviceRef,
    TwinTopics,
)

_LOGGER = logging.getLogger(__name__)

Publish = Callable[[str, bytes], "asyncio.Future[None]"]


class TwinSource(Protocol):
    """A device twin as a program follows it.

    Over MQTT (``TwinClient``, KubeEdge 1.4-1.14) or over DMI (``DmiTwin``, 1.15+).
    """

    def desired(self) -> AsyncIterator[dict[str, str]]:
        """Every desired value of the device, each time one of them changes."""
        ...

    def report(self, values: Mapping[str, str]) -> asyncio.Future[None]:
        """Report values; the future completes when edgecore has them."""
        ...


class TwinError(Exception):
    """edgecore answered a twin request with an error code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"twin error {code}: {reason}")
        self.code = code
        self.reason = reason


class TwinClient:
    """Follows one device's twin: ``get``, ``report`` actual values, a stream of desired values.

    Args:
        device: The KubeEdge device.
        topics: Topic layout.
        publish: Sends a payload at QoS 1; returns a future completed on the broker's ack.
    """

    def __init__(self, device: DeviceRef, *, topics: TwinTopics, publish: Publish) -> None:
        self._device = device
        self._topics = topics
        self._publish = publish
        self._gets: dict[str, asyncio.Future[dict[str, MsgTwin]]] = {}
        self._desired: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._last_desired: dict[str, str] | None = None
        self.bad_messages = 0

    @property
    def device(self) -> DeviceRef:
        """The device this client follows."""
        return self._device

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        """Topic filters the owner must subscribe to (QoS 1)."""
        return [
            (self._topics.topic(self._device, TWIN_UPDATE_DELTA), 1),
            (self._topics.topic(self._device, TWIN_GET_RESULT), 1),
            (self._topics.topic(self._device, TWIN_UPDATE_RESULT), 1),
        ]

    def handle(self, topic: str, payload: bytes) -> bool:
        """Take an inbound message; returns False if it is not for this client."""
        parsed = self._topics.parse(topic)
        if parsed is None or parsed[0] != self._topics.device_id(self._device):
            return False
        suffix = parsed[1]
        try:
            if suffix == TWIN_UPDATE_DELTA:
                self._offer(desired_values(Delta.decode(payload).twin))
            elif suffix == TWIN_GET_RESULT:
                self._got(payload)
            elif suffix == TWIN_UPDATE_RESULT:
                error = error_of(loads(payload))
                if error is not None:
                    _LOGGER.warning(
                        "twin update of %s refused: %s", self._device.name, error.reason
                    )
            else:
                return False
        except (TwinFormatError, ValueError) as exc:
            self.bad_messages += 1
            _LOGGER.warning("bad twin message on %.200s: %s", topic, exc)
        return True

    def _got(self, payload: bytes) -> None:
        data: Mapping[str, Any] = loads(payload)
        future = self._gets.pop(str(data.get("event_id", "")), None)
        error = error_of(data)
        if error is not None:
            if future is not None and not future.done():
                future.set_exception(TwinError(error.code, error.reason))
            return
        twins = {k: v for k, v in TwinMessage.decode(payload).twin.items() if v is not None}
        if future is not None and not future.done():
            future.set_result(twins)
        self._offer(desired_values(twins))

    def _offer(self, desired: dict[str, str]) -> None:
        # edgecore re-sends deltas while any mismatch remains: pass on changes only.
        if desired != self._last_desired:
            self._last_desired = desired
            self._desired.put_nowait(desired)

    def current(self) -> dict[str, str] | None:
        """The desired values known last (None before any came)."""
        return None if self._last_desired is None else dict(self._last_desired)

    async def get(self, timeout_s: float = 5.0) -> dict[str, MsgTwin]:
        """Ask edgecore for every twin of the device.

        Raises:
            TwinError: if edgecore answers with an error (e.g. 404: device not bound).
            TimeoutError: if nothing answers.
        """
        event_id = new_event_id()
        future: asyncio.Future[dict[str, MsgTwin]] = asyncio.get_running_loop().create_future()
        self._gets[event_id] = future
        try:
            await self._publish(self._topics.topic(self._device, TWIN_GET), get_request(event_id))
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            self._gets.pop(event_id, None)

    async def resync(self, first_timeout_s: float = 1.0, max_wait_s: float = 15.0) -> None:
        """Ask for the twin until edgecore answers with the device's document.

        edgecore 1.4 subscribes with a clean session and publishes nothing when it starts, so a
        ``twin/get`` sent before it subscribed is lost without a trace; and a device the cloud
        has not bound yet answers 404 until it has. Either way: ask again, waiting twice as long
        each time up to ``max_wait_s``. The answer feeds ``desired()``.
        """
        wait_s = first_timeout_s
        while True:
            try:
                await self.get(timeout_s=wait_s)
            except TimeoutError:
                _LOGGER.info(
                    "no twin/get answer for %s in %.1f s; asking again", self._device.name, wait_s
                )
            except TwinError as exc:
                _LOGGER.info("twin of %s not there yet (%s); asking again", self._device.name, exc)
                await asyncio.sleep(wait_s)
            else:
                return
            wait_s = min(wait_s * 2, max_wait_s)

    def request_twins(self) -> asyncio.Future[None]:
        """Publish a ``twin/get`` without waiting; the answer feeds ``desired()``."""
        return self._publish(self._topics.topic(self._device, TWIN_GET), get_request())

    def report(
        self, values: Mapping[str, str], types: Mapping[str, str] | None = None
    ) -> asyncio.Future[None]:
        """Report actual values (``twin/update`` with ``actual`` only).

        Raises:
            TwinFormatError: if a value breaks KubeEdge's value pattern.
        """
        message = report(values, types)
        return self._publish(self._topics.topic(self._device, TWIN_UPDATE), message.encode())

    def report_state(self, state: str) -> asyncio.Future[None]:
        """Report the device state (``online``, ``offline`` or ``unknown`` in 1.4)."""
        return self._publish(self._topics.topic(self._device, STATE_UPDATE), state_update(state))

    async def desired(self) -> AsyncIterator[dict[str, str]]:
        """Desired values, each time they change (from deltas and get results)."""
        while True:
            yield await self._desired.get()
