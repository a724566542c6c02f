"""One simulated camera: renders or reads faces, preprocesses them, publishes, checks answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from device_sim.faces import EMOTIONS, FaceRenderer
from device_sim.preprocessing import crop_face
from device_sim.stats import FleetStats
from edge_runtime import (
    InboundMessage,
    MqttTransport,
    PayloadError,
    Request,
    Response,
    ServiceInfo,
    Topics,
    decode_response,
    decode_service_info,
    encode_request,
)
from edgeinfer.v1 import inference_pb2

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """How one camera behaves."""

    name: str
    broker: str
    runtime_id: str
    topic_root: str = "emotion/v1"
    fps: float = 2.0
    jitter: float = 0.2
    answer_timeout_s: float = 10.0
    seed: int = 0
    malformed_rate: float = 0.0  # share of frames sent with truncated pixels (fault injection)


@dataclass(slots=True)
class _Sent:
    at: float
    label: int
    injected: bool = False


def _truncated_pixels(payload: bytes) -> bytes:
    """Fault injection: the same request with pixel data shorter than its shape says."""
    message = inference_pb2.InferenceRequest.FromString(payload)
    tensor = message.faces[0].pixels
    tensor.data = tensor.data[: len(tensor.data) // 2]
    return message.SerializeToString()


class Camera:
    """A device that publishes one face per frame and checks each answer.

    Args:
        config: Identity, rate and broker.
        stats: Where measurements go (shared by a fleet).
        on_answer: Optional observer of (camera, response, true label) per answer.
    """

    def __init__(
        self,
        config: CameraConfig,
        stats: FleetStats,
        on_answer: Callable[[str, Response, int], None] | None = None,
    ) -> None:
        self._config = config
        self._stats = stats
        self._on_answer = on_answer
        self._topics = Topics(config.topic_root)
        self._renderer = FaceRenderer(config.seed)
        self._pending: dict[str, _Sent] = {}
        self._info: asyncio.Future[ServiceInfo] | None = None
        self._counter = 0
        self._all_answered = asyncio.Event()
        self._transport = MqttTransport(
            config.broker,
            client_id=f"device-sim-{config.name}",
            subscriptions=[
                (self._topics.result(config.name), 1),
                (self._topics.info(config.runtime_id), 1),
            ],
            clean_start=True,
            session_expiry_s=0,
        )

    async def run(self, duration_s: float) -> None:
        """Publish for ``duration_s``, then wait for the last answers (or count them lost)."""
        self._info = asyncio.get_running_loop().create_future()
        name = self._config.name
        async with self._transport, asyncio.TaskGroup() as tg:
            receiver = tg.create_task(self._receive(), name=f"camera[{name}].receive")
            async with asyncio.timeout(30):
                info = await self._info
            await self._publish_for(duration_s, info)
            await self._await_answers()
            receiver.cancel()

    async def _publish_for(self, duration_s: float, info: ServiceInfo) -> None:
        end = time.monotonic() + duration_s
        period = 1.0 / self._config.fps
        rng = random.Random(self._config.seed)  # noqa: S311 - simulation, not security
        while time.monotonic() < end:
            self._publish_frame(info, inject=rng.random() < self._config.malformed_rate)
            await asyncio.sleep(period * (1 + rng.uniform(-1, 1) * self._config.jitter))

    def _publish_frame(self, info: ServiceInfo, *, inject: bool = False) -> None:
        rendered = self._renderer.render()
        face = crop_face(rendered.frame, rendered.box, info.input, margin=0.0)
        self._counter += 1
        request_id = f"{self._config.name}-{self._counter}"
        request = Request(request_id, self._config.name, int(time.time() * 1000), (face,))
        payload = encode_request(request)
        if inject:
            payload = _truncated_pixels(payload)
        self._pending[request_id] = _Sent(time.monotonic(), rendered.label, inject)
        self._stats.sent += 1
        self._stats.injected += inject
        self._transport.publish_nowait(self._topics.request(self._config.name), payload, qos=1)

    async def _await_answers(self) -> None:
        if self._pending:
            self._all_answered.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.answer_timeout_s):
                    await self._all_answered.wait()
        self._stats.lost += len(self._pending)
        self._pending.clear()

    async def _receive(self) -> None:
        async for message in self._transport.messages():
            self._handle(message)

    def _handle(self, message: InboundMessage) -> None:
        try:
            if message.topic.endswith("/info"):
                info = decode_service_info(message.payload)
                if self._info is not None and not self._info.done():
                    self._info.set_result(info)
                return
            response = decode_response(message.payload)
        except PayloadError:
            _LOGGER.warning("camera %s got an undecodable message", self._config.name)
            return
        sent = self._pending.pop(response.request_id, None)
        if sent is None:
            return  # a duplicate (at-least-once) or an answer after the timeout
        if not self._pending:
            self._all_answered.set()
        version = response.model.version if response.model else "?"
        self._stats.saw_version(version)
        correct = None
        if response.results:
            correct = response.results[0].label == EMOTIONS[sent.label]
        if sent.injected:
            self._stats.record_injected(response.status.name)
            return
        self._stats.record(time.monotonic() - sent.at, response.status.name, version, correct)
        if self._on_answer is not None:
            self._on_answer(self._config.name, response, sent.label)
