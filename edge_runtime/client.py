"""The device side of the request/answer contract, with retries: nothing lost on a lossy broker.

QoS 1 does not deliver on its own: mosquitto drops QoS 1 messages for a client past its queue
limit (KubeEdge's mosquitto 1.6.15 keeps 100 per client by default) and does not hand a crashed
subscriber's messages to another. So a device that must get every answer sends each request,
waits for its answer and, when none comes in time, sends it again with the same ``request_id``
(backing off), until its deadline. The runtime answers a repeated ``request_id`` of the same
device again from its recent answers without running the model twice; a retry of a request
still in progress is acknowledged and ignored (its answer is on the way).

Use it from camera firmware written in Python::

    transport = MqttTransport(url, client_id=name, subscriptions=client.subscriptions, ...)
    client = InferenceClient(transport, name)
    async with transport:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(client.receive())  # or feed client.handle(message) yourself
            response = await client.infer(request)

Answers are matched by ``request_id``: make it unique per request and device (a counter with
a boot id, or a UUID). Duplicate answers (at-least-once) are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from edge_runtime import codec
from edge_runtime.errors import PayloadError
from edge_runtime.futures import ignore_failure
from edge_runtime.messages import Request, Response, Status, WireFormat
from edge_runtime.transport import InboundMessage, MqttTransport
from edgeinfer.topics import CONTENT_TYPE_JSON, REQUEST_QOS, RESULT_QOS, Topics

_LOGGER = logging.getLogger(__name__)

# Answers that say "try again": the runtime was full or had no model; a retry may succeed.
RETRYABLE = frozenset({Status.RESOURCE_EXHAUSTED, Status.UNAVAILABLE})


class AnswerTimeout(TimeoutError):
    """No answer came before the request's deadline, after every retry."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to send a request again.

    Args:
        first_wait_s: How long to wait for the first answer before sending again.
        max_wait_s: The wait doubles after each try, up to this (with ±25 % jitter, so a
            fleet's retries spread out).
        deadline_s: Give up (``AnswerTimeout``) this long after the first send.
    """

    first_wait_s: float = 1.0
    max_wait_s: float = 8.0
    deadline_s: float = 30.0


class InferenceClient:
    """Sends a device's requests and awaits each one's answer, retrying until its deadline.

    Args:
        transport: The device's MQTT connection; subscribe it to ``subscriptions``.
        device: The device's name (its topics' ``<device>`` level).
        topics: The application topics (root ``emotion/v1`` by default).
        policy: Retry timing.
    """

    def __init__(
        self,
        transport: MqttTransport,
        device: str,
        *,
        topics: Topics | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.transport = transport  # replaceable: a new connection of the same device
        self._device = device
        self._topics = topics or Topics()
        self._policy = policy or RetryPolicy()
        self._waiting: dict[str, asyncio.Future[Response]] = {}
        self.retries = 0  # requests sent again
        self.duplicates = 0  # answers that came for a request already answered

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        """What the transport must subscribe to for the answers."""
        return [(self._topics.result(self._device), RESULT_QOS)]

    def handle(self, message: InboundMessage) -> bool:
        """Take an answer from the device's result topic; False if ``message`` is not one.

        Raises:
            PayloadError: the message on the result topic is not an InferenceResponse.
        """
        if message.topic != self._topics.result(self._device):
            return False
        wire = WireFormat.of(message.content_type)
        response = codec.decode_response(message.payload, wire)
        future = self._waiting.get(response.request_id)
        if future is None or future.done():
            self.duplicates += 1
        else:
            future.set_result(response)
        return True

    async def receive(self) -> None:
        """Take answers from the transport until cancelled (when nothing else reads it)."""
        async for message in self.transport.messages():
            try:
                self.handle(message)
            except PayloadError as exc:
                _LOGGER.warning("device %s: undecodable answer: %s", self._device, exc)
            self.transport.ack(message)

    async def infer(self, request: Request, *, wire: WireFormat = WireFormat.PROTOBUF) -> Response:
        """Send ``request`` and return its answer.

        Raises:
            AnswerTimeout: no answer before the policy's deadline.
        """
        return await self.infer_payload(
            request.request_id,
            codec.encode_request(request, wire),
            content_type=CONTENT_TYPE_JSON if wire is WireFormat.JSON else "",
        )

    async def infer_payload(
        self, request_id: str, payload: bytes, *, content_type: str = ""
    ) -> Response:
        """Send an encoded request whose id is ``request_id``; return its answer.

        A RESOURCE_EXHAUSTED or UNAVAILABLE answer is retried like a missing one while time
        remains; the last answer is returned when the deadline comes.

        Raises:
            AnswerTimeout: no answer before the policy's deadline.
        """
        if request_id in self._waiting:
            raise ValueError(f"request {request_id!r} is already waiting for its answer")
        loop = asyncio.get_running_loop()
        policy = self._policy
        deadline = loop.time() + policy.deadline_s
        wait_s = policy.first_wait_s
        last: Response | None = None
        try:
            while True:
                future: asyncio.Future[Response] = loop.create_future()
                self._waiting[request_id] = future
                await self._send(payload, content_type, deadline)
                try:
                    async with asyncio.timeout(max(0.0, min(wait_s, deadline - loop.time()))):
                        last = await future
                except TimeoutError:
                    pass
                else:
                    if last.status not in RETRYABLE:
                        return last
                    # Full or not ready: wait before trying again, as for a lost answer.
                    await asyncio.sleep(max(0.0, min(wait_s, deadline - loop.time())))
                if loop.time() >= deadline:
                    if last is not None:
                        return last
                    raise AnswerTimeout(
                        f"no answer to {request_id!r} within {policy.deadline_s:g} s"
                    )
                self.retries += 1
                wait_s = min(policy.max_wait_s, wait_s * 2) * random.uniform(0.75, 1.25)  # noqa: S311
        finally:
            self._waiting.pop(request_id, None)

    async def _send(self, payload: bytes, content_type: str, deadline: float) -> None:
        """Publish once connected (paho would queue copies while away)."""
        loop = asyncio.get_running_loop()
        # Polled, not awaited: the transport may be replaced by a new connection meanwhile.
        while not self.transport.connected.is_set() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self.transport.publish_nowait(
            self._topics.request(self._device),
            payload,
            qos=REQUEST_QOS,
            content_type=content_type,
        ).add_done_callback(ignore_failure)  # the answer tells, not the PUBACK
