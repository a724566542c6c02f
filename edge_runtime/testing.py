"""Test doubles for what lies beyond the runtime: a model that needs no file, a broker in memory.

With them the inference service, the MQTT door and a whole :class:`Runtime` run in a test with
no broker on the machine and no model on disk (``tests/unit/``)::

    broker = MemoryBroker()
    runtime = Runtime(settings, model=FakeModel(), transport=broker.open)
    ...
    broker.publish("emotion/v1/cam-1/request", encode_request(request, WireFormat.PROTOBUF))
    [answer] = await broker.answers(1)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

from edge_runtime.messages import InputSpec, ModelRef, Normalization
from edge_runtime.mqtt_door import Wiring
from edge_runtime.transport import InboundMessage

LABELS = ("negative", "neutral", "positive")


class FakeModel:
    """A model with no file: face ``i``'s label is ``LABELS[int(mean pixel) % 3]`` (0.8 of it).

    Args:
        version: The version it reports.
        side: Input height and width (one channel, ``unit`` normalisation).
        fail_next: Raise on this many batches before answering again (an engine that broke).
        offload_scores: Score percentiles, as a manifest's (joint inference's target rate).
    """

    def __init__(
        self,
        version: str = "1.0.0",
        *,
        side: int = 8,
        fail_next: int = 0,
        offload_scores: Mapping[str, tuple[float, ...]] | None = None,
    ) -> None:
        self._ref = ModelRef("fake", version)
        self._offload_scores = dict(offload_scores or {})
        self._spec = InputSpec(side, side, 1, Normalization.UNIT)
        self.fail_next = fail_next
        self.batches: list[int] = []  # faces per batch run, in order
        self.threads_asked: list[int | None] = []  # ``predict``'s threads, per call
        self.closed = False

    @property
    def ref(self) -> ModelRef:
        """Name and version."""
        return self._ref

    @property
    def input_spec(self) -> InputSpec:
        """Input of one face."""
        return self._spec

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in output order."""
        return LABELS

    @property
    def variant(self) -> str:
        """Always float32."""
        return "float32"

    @property
    def offload_scores(self) -> Mapping[str, tuple[float, ...]]:
        """What it was given."""
        return self._offload_scores

    async def predict(
        self, batch: npt.NDArray[np.float32], *, threads: int | None = None
    ) -> npt.NDArray[np.float32]:
        """``predict_now``, as a coroutine (``threads`` noted in ``threads_asked``)."""
        self.threads_asked.append(threads)
        return self.predict_now(batch)

    def predict_now(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities from each face's mean pixel (inputs are scaled to [0, 1])."""
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("the fake model was told to fail")
        self.batches.append(len(batch))
        means = (batch.reshape(len(batch), -1).mean(axis=1) * 255.0).round().astype(np.int64)
        probabilities = np.full((len(batch), len(LABELS)), 0.1, np.float32)
        probabilities[np.arange(len(batch)), means % len(LABELS)] = 0.8
        return probabilities

    def warm_up(self) -> None:
        """Nothing to warm."""

    def warm_up_steps(self) -> Sequence[Callable[[], object]]:
        """No steps."""
        return ()

    def close(self) -> None:
        """Mark closed."""
        self.closed = True


def label_of(gray: int) -> str:
    """The label ``FakeModel`` gives a face of uniform ``gray``."""
    return LABELS[gray % len(LABELS)]


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the runtime published."""

    topic: str
    payload: bytes
    content_type: str = ""
    correlation_data: bytes | None = None
    retain: bool = False


@dataclass
class MemoryBroker:
    """One broker in memory for one runtime's MQTT door: messages in, publishes and acks out.

    ``events`` records ``("sent", topic)`` and ``("ack", mid)`` in the order the transport
    would have written them to the socket, so a test can check an answer goes before its ack.
    """

    events: list[tuple[str, object]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    retained: dict[str, bytes] = field(default_factory=dict)
    wiring: Wiring | None = None
    _transport: MemoryTransport | None = None
    _mids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def open(self, wiring: Wiring) -> MemoryTransport:
        """The door's transport (pass this method as ``transport=``)."""
        self.wiring = wiring
        self._transport = MemoryTransport(self, wiring)
        return self._transport

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str = "",
        response_topic: str = "",
        correlation_data: bytes | None = None,
        qos: int = 1,
    ) -> int:
        """Deliver a message to the door as the broker would; returns its packet id."""
        if self._transport is None:
            raise RuntimeError("no transport opened yet")
        mid = next(self._mids)
        self._transport.inbox.put_nowait(
            InboundMessage(
                topic,
                payload,
                qos,
                False,
                mid,
                content_type,
                response_topic,
                correlation_data,
                1,
            )
        )
        return mid

    @property
    def taken(self) -> bool:
        """True once the door has taken every message published to it."""
        return self._transport is not None and self._transport.inbox.empty()

    @property
    def acked(self) -> list[int]:
        """Packet ids acknowledged, in order."""
        return [int(str(what)) for kind, what in self.events if kind == "ack"]

    async def answers(self, count: int, timeout_s: float = 5.0) -> list[Sent]:
        """Wait until ``count`` non-retained messages were sent; return them all."""
        async with asyncio.timeout(timeout_s):
            while len(self.answered()) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.answered()

    def answered(self) -> list[Sent]:
        """Non-retained messages sent so far."""
        return [s for s in self.sent if not s.retain]

    async def until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Wait until ``condition()`` holds: checked after every publish or ack, and each ms."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.001):
                        await self._changed.wait()

    def record(self, event: tuple[str, object], sent: Sent | None = None) -> None:
        """What the transport wrote (its transport calls this)."""
        self.events.append(event)
        if sent is not None:
            self.sent.append(sent)
            if sent.retain:
                self.retained[sent.topic] = sent.payload
        self._changed.set()


class MemoryTransport:
    """The door's side of a :class:`MemoryBroker` (implements ``mqtt_door.DoorTransport``)."""

    def __init__(self, broker: MemoryBroker, wiring: Wiring) -> None:
        self._broker = broker
        self._wiring = wiring
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.connected = asyncio.Event()

    async def __aenter__(self) -> Self:
        self.connected.set()
        self._wiring.on_connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.connected.clear()

    async def messages(self) -> AsyncIterator[InboundMessage]:
        """Messages the test published, in order."""
        while True:
            yield await self.inbox.get()

    def ack(self, message: InboundMessage) -> None:
        """Record the ack (QoS 1 only, as on the wire)."""
        if message.qos:
            self._broker.record(("ack", message.mid))

    def send(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str = "",
        correlation_data: bytes | None = None,
    ) -> None:
        """Record an answer.

        Raises:
            ValueError: for a topic no broker would take, as ``MqttTransport.send``.
        """
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"invalid topic {topic!r}")
        self._broker.record(("sent", topic), Sent(topic, payload, content_type, correlation_data))

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str = "",
    ) -> asyncio.Future[None]:
        """Record a publish; its future is done at once."""
        self._broker.record(("sent", topic), Sent(topic, payload, content_type, None, retain))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def confirmed(self) -> None:
        """Every send is confirmed at once."""
