"""One MQTT connection that comes back: reconnect with backoff, resubscribe, re-read (aiomqtt)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from edgeinfer.broker import SOCKET_OPTIONS, Broker
from kubeedge_twin.client import Publish

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and how a mapper connects (edgecore's broker, normally 127.0.0.1:1883)."""

    broker: str = "mqtt://127.0.0.1:1883"
    client_id: str = "mapper"
    username: str = ""
    password: str = ""
    ca_file: str = ""
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def client(self, will: aiomqtt.Will | None = None) -> aiomqtt.Client:
        """A new client (not yet connected)."""
        broker = Broker.parse(self.broker)
        tls = broker.tls
        context = ssl.create_default_context(cafile=self.ca_file or None) if tls else None
        return aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=self.client_id,
            username=self.username or None,
            password=self.password or None,
            will=will,
            tls_context=context,
            clean_session=True,
            keepalive=30,
            socket_options=list(SOCKET_OPTIONS),
        )


Session = Callable[[aiomqtt.Client], Awaitable[None]]


async def run_forever(
    connection: Connection, session: Session, will: aiomqtt.Will | None = None
) -> None:
    """Run ``session`` on a connected client; on any connection loss, reconnect and rerun it.

    ``session`` subscribes and re-reads what it needs each time, so a broker or edgecore
    restart costs a reconnect, never the mapper. Cancel the task to stop.
    """
    delay = connection.reconnect_min_s
    while True:
        try:
            client = connection.client(will)
            await client.__aenter__()
            try:
                _LOGGER.warning("connected to %s as %s", connection.broker, connection.client_id)
                delay = connection.reconnect_min_s
                await session(client)
            finally:
                await _disconnect(client)
        except* aiomqtt.MqttError as group:  # raised bare or from a session's task group
            reason = group.exceptions[0]
            _LOGGER.warning(
                "broker %s: %s; reconnecting in ~%.1f s", connection.broker, reason, delay
            )
        # A TaskGroup cancelled while a child fails with MqttError (the broker went away as
        # SIGTERM came) raises only the MqttError: the cancellation is gone from the exception
        # but still counted on the task. Without this check the mapper reconnected forever.
        _raise_if_cancelled()
        await asyncio.sleep(random.uniform(delay / 2, delay * 1.5))  # noqa: S311 - jitter
        delay = min(delay * 2, connection.reconnect_max_s)


async def _disconnect(client: aiomqtt.Client, timeout_s: float = 5.0) -> None:
    """Leave the connection, waiting at most ``timeout_s``.

    aiomqtt waits for the broker's side without a limit, which hung a cancelled mapper when
    the disconnect could not complete.
    """
    with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
        async with asyncio.timeout(timeout_s):
            await client.__aexit__(None, None, None)


async def publish(
    client: aiomqtt.Client, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
) -> None:
    """``client.publish`` that never swallows a cancellation.

    aiomqtt waits for the ack with ``asyncio.wait_for``, which on Python 3.11 can drop a
    cancellation that races with the ack (fixed in 3.12); a dropped cancel left a mapper's
    task group unable to stop.
    """
    await client.publish(topic, payload, qos=qos, retain=retain)
    _raise_if_cancelled()


def _raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop, even if the cancel was swallowed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def twin_publisher(client: aiomqtt.Client) -> Publish:
    """A ``TwinClient`` publish callback on ``client`` (QoS 1, cancellation-safe)."""
    return lambda topic, payload: asyncio.ensure_future(publish(client, topic, payload))


async def every_until_done(
    task: asyncio.Task[None], period_s: float, action: Callable[[], Awaitable[None]]
) -> None:
    """Run ``action`` now and every ``period_s`` until ``task`` ends (a mapper's resync)."""
    while not task.done():
        await action()
        await asyncio.wait([task], timeout=period_s)
