"""One simulated camera: takes frames, preprocesses faces, publishes, checks answers.

A camera is also a KubeEdge device behind a mapper: it obeys desired ``capture_fps`` and
``enabled`` from its control topic and reports its actual settings, the model version that
answered it and the last emotion it saw on its retained status topic (Last Will: offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from device_sim.preprocessing import crop_face
from device_sim.sources import FaceSource, RenderedSource
from device_sim.stats import FleetStats
from edge_runtime import (
    AnswerTimeout,
    Credentials,
    EdgeError,
    InboundMessage,
    InferenceClient,
    MqttTransport,
    PayloadError,
    Request,
    Response,
    RetryPolicy,
    ServiceInfo,
    Topics,
    Will,
    decode_service_info,
    encode_request,
)
from edgeinfer import camera as contract
from edgeinfer.faces import EMOTIONS
from edgeinfer.v1 import inference_pb2

_LOGGER = logging.getLogger(__name__)
_SESSION_EXPIRY_S = 300  # the broker keeps a camera's answers this long while it is away


class Mode(enum.StrEnum):
    """How a camera paces its requests."""

    OPEN = "open"  # a frame every 1/fps seconds, whatever the answers do
    CLOSED = "closed"  # keep ``in_flight`` requests outstanding, send on each answer


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """How one camera behaves."""

    name: str
    broker: str
    runtime_id: str
    topic_root: str = "emotion/v1"
    mode: Mode = Mode.OPEN
    fps: float = 2.0
    jitter: float = 0.2
    in_flight: int = 1  # closed loop: requests kept outstanding
    answer_timeout_s: float = 10.0  # give a request up as lost this long after its first send
    retry_after_s: float = 1.0  # send a request again when no answer came within this (doubling)
    seed: int = 0
    start_delay_s: float = 0.0  # ramp-up: when this camera starts within the run
    report_interval_s: float = 1.0  # least time between two status reports
    malformed_rate: float = 0.0  # share of frames sent with truncated pixels (fault injection)
    share_for_training: bool = False  # consent: the runtime may keep hard faces for training
    disconnect_every_s: float = 0.0  # fault injection: drop the connection this often (0: never)
    disconnect_for_s: float = 1.0  # and stay away this long
    credentials: Credentials = field(default_factory=Credentials)


@dataclass(slots=True)
class _Sent:
    at: float
    label: int | None
    injected: bool = False


def _truncated_pixels(payload: bytes) -> bytes:
    """Fault injection: the same request with pixel data shorter than its shape says."""
    message = inference_pb2.InferenceRequest.FromString(payload)
    tensor = message.faces[0].pixels
    tensor.data = tensor.data[: len(tensor.data) // 2]
    return message.SerializeToString()


class Camera:
    """A device that publishes the faces of each frame and checks each answer.

    Args:
        config: Identity, pacing, faults and broker.
        stats: Where measurements go (shared by a fleet).
        source: Frames; rendered faces by default.
        on_answer: Optional observer of (camera, response, true label) per answer.
    """

    def __init__(
        self,
        config: CameraConfig,
        stats: FleetStats,
        source: FaceSource | None = None,
        on_answer: Callable[[str, Response, int | None], None] | None = None,
    ) -> None:
        self._config = config
        self._stats = stats
        self._source = source or RenderedSource(config.seed)
        self._on_answer = on_answer
        self._topics = Topics(config.topic_root)
        self._rng = random.Random(config.seed)  # noqa: S311 - simulation, not security
        self._pending: dict[str, _Sent] = {}
        self._calls: set[asyncio.Task[None]] = set()  # one per request waiting for its answer
        self._client: InferenceClient | None = None
        self._info: asyncio.Future[ServiceInfo] | None = None
        self._counter = 0
        # Request ids stay unique across runs: the runtime answers a repeated (device, id) from
        # its recent answers (a retry), so a restarted camera counting from 1 again would get
        # the previous run's answers.
        self._run_id = secrets.token_hex(3)
        self._answered = asyncio.Event()
        self._settings_changed = asyncio.Event()
        self._status_dirty = asyncio.Event()
        self.fps = config.fps
        self.enabled = True
        self.model_version: str | None = None
        self.last_emotion: str | None = None
        self.sessions = 0

    @property
    def name(self) -> str:
        """The camera's device name."""
        return self._config.name

    def _transport(self) -> MqttTransport:
        root, name = self._config.topic_root, self._config.name
        status = contract.status_topic(root, name)
        first = self.sessions == 0
        self.sessions += 1
        return MqttTransport(
            self._config.broker,
            client_id=f"device-sim-{name}",
            subscriptions=[
                (self._topics.result(name), 1),
                (self._topics.info(self._config.runtime_id), 1),
                (contract.control_topic(root, name), 1),
            ],
            will=Will(status, contract.CameraStatus(contract.OFFLINE).encode()),
            credentials=self._config.credentials,
            clean_start=first,  # later sessions resume: answers queued meanwhile arrive
            session_expiry_s=_SESSION_EXPIRY_S,
            manual_ack=True,  # an answer taken but not handled before a drop comes again
            on_connect=self._status_dirty.set,  # a restarted broker may have lost the status
        )

    async def run(self, duration_s: float) -> None:
        """Publish for ``duration_s`` (after the start delay), then wait for the last answers."""
        await asyncio.sleep(self._config.start_delay_s)
        end = time.monotonic() + duration_s
        while True:
            away = await self._session(end)
            if away is None:
                break
            self._stats.disconnects += 1
            await asyncio.sleep(away)

    async def _session(self, end: float) -> float | None:
        """One connection; returns how long to stay away if it is dropped on purpose."""
        loop = asyncio.get_running_loop()
        self._info = loop.create_future()
        transport = self._transport()
        if self._client is None:
            self._client = InferenceClient(
                transport,
                self._config.name,
                topics=self._topics,
                policy=RetryPolicy(
                    first_wait_s=self._config.retry_after_s,
                    max_wait_s=max(self._config.retry_after_s, 8.0),
                    deadline_s=self._config.answer_timeout_s,
                ),
            )
        else:  # a resumed session: requests waiting for answers go on over the new connection
            self._client.transport = transport
        name = self._config.name
        drop_at = float("inf")
        if self._config.disconnect_every_s > 0:
            drop_at = time.monotonic() + self._config.disconnect_every_s * self._rng.uniform(
                0.5, 1.5
            )
        async with transport, asyncio.TaskGroup() as tg:
            background = [
                tg.create_task(self._receive(transport), name=f"camera[{name}].receive"),
                tg.create_task(self._report(transport), name=f"camera[{name}].report"),
            ]
            async with asyncio.timeout(30):
                info = await self._info
            stop = min(end, drop_at)
            if self._config.mode is Mode.CLOSED:
                await self._closed_loop(transport, info, stop)
            else:
                await self._open_loop(transport, info, stop)
            if stop == drop_at and drop_at < end:
                # Requests not yet with the broker are sent again after the reconnect (the
                # client retries); answers are safe: the resumed session gets them.
                transport.send_will_on_close()
                for task in background:
                    task.cancel()
                return self._config.disconnect_for_s
            await self._await_answers()
            for task in background:
                task.cancel()
            # After the reporter stopped, so no late "online" lands after this "offline".
            await asyncio.wait(background)
            await self._publish_status(transport, contract.OFFLINE)
        return None

    async def _pause_while_disabled(self, stop: float) -> None:
        while not self.enabled and time.monotonic() < stop:
            self._settings_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, stop - time.monotonic())):
                    await self._settings_changed.wait()

    async def _open_loop(self, transport: MqttTransport, info: ServiceInfo, stop: float) -> None:
        while time.monotonic() < stop:
            await self._pause_while_disabled(stop)
            if time.monotonic() >= stop:
                return
            self._publish_frame(transport, info)
            period = (1.0 / self.fps) * (1 + self._rng.uniform(-1, 1) * self._config.jitter)
            self._settings_changed.clear()
            # A new capture_fps or enabled takes effect at once, not after a long period.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(period, stop - time.monotonic()))):
                    await self._settings_changed.wait()

    async def _closed_loop(self, transport: MqttTransport, info: ServiceInfo, stop: float) -> None:
        while time.monotonic() < stop:
            await self._pause_while_disabled(stop)
            while len(self._pending) < self._config.in_flight and time.monotonic() < stop:
                if not self._publish_frame(transport, info):
                    await asyncio.sleep(0.01)  # a frame without a face: do not spin
                    break
            if not self._pending:
                continue  # nothing to wait for (the frames had no face)
            self._answered.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, stop - time.monotonic())):
                    await self._answered.wait()

    def _publish_frame(self, transport: MqttTransport, info: ServiceInfo) -> bool:
        """Send the faces of the next frame; False if it had none."""
        shot = self._source.next_shot()
        if not shot.faces:
            self._stats.frames_without_face += 1
            return False
        faces = tuple(crop_face(shot.gray, box, info.input, shot.margin) for box, _ in shot.faces)
        self._counter += 1
        request_id = f"{self._config.name}-{self._run_id}-{self._counter}"
        request = Request(
            request_id,
            self._config.name,
            int(time.time() * 1000),
            faces,
            self._config.share_for_training,
        )
        payload = encode_request(request)
        inject = self._rng.random() < self._config.malformed_rate
        if inject:
            payload = _truncated_pixels(payload)
        self._pending[request_id] = _Sent(time.monotonic(), shot.faces[0][1], inject)
        self._stats.sent += 1
        self._stats.injected += inject
        if self._client is None:  # set by the session that sends
            raise RuntimeError("camera sends before its session started")
        call = asyncio.create_task(
            self._call(self._client, request_id, payload), name=f"request[{request_id}]"
        )
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        return True

    async def _call(self, client: InferenceClient, request_id: str, payload: bytes) -> None:
        """Send one request (again, until its deadline, when no answer comes) and record it."""
        try:
            response = await client.infer_payload(request_id, payload)
        except AnswerTimeout:
            if self._pending.pop(request_id, None) is not None:
                self._stats.lost += 1
                self._answered.set()
            return
        self._answer(response)

    async def _await_answers(self) -> None:
        if self._calls:  # each gives up by itself at its deadline
            await asyncio.wait(set(self._calls))
        self._stats.lost += len(self._pending)
        self._pending.clear()
        if self._client is not None:
            self._stats.retries += self._client.retries
            self._client.retries = 0

    async def _report(self, transport: MqttTransport) -> None:
        """Publish the status on change, at most once per report interval."""
        await transport.wait_connected(30)
        self._status_dirty.set()
        while True:
            await self._status_dirty.wait()
            self._status_dirty.clear()
            await self._publish_status(transport, contract.ONLINE)
            await asyncio.sleep(self._config.report_interval_s)

    async def _publish_status(self, transport: MqttTransport, state: str) -> None:
        status = contract.CameraStatus(
            state, self.fps, self.enabled, self.model_version, self.last_emotion
        )
        status_topic = contract.status_topic(self._config.topic_root, self._config.name)
        with contextlib.suppress(TimeoutError, EdgeError):  # best effort; the Will backs it
            async with asyncio.timeout(5):
                await transport.publish(status_topic, status.encode(), qos=1, retain=True)

    async def _receive(self, transport: MqttTransport) -> None:
        async for message in transport.messages():
            self._handle(message)
            transport.ack(message)

    def _handle(self, message: InboundMessage) -> None:
        try:
            if message.topic.endswith("/control"):
                self._apply(contract.CameraControl.decode(message.payload))
                return
            if message.topic.endswith("/info"):
                info = decode_service_info(message.payload)
                if self._info is not None and not self._info.done():
                    self._info.set_result(info)
                return
            if self._client is not None:
                self._client.handle(message)
        except (PayloadError, contract.CameraMessageError) as exc:
            self._stats.bad_messages += 1
            _LOGGER.warning("camera %s ignored a bad message: %s", self._config.name, exc)

    def _apply(self, control: contract.CameraControl) -> None:
        if control.capture_fps is not None and control.capture_fps != self.fps:
            self.fps = control.capture_fps
            self._stats.event(f"{self._config.name} capture_fps={self.fps:g}")
        if control.enabled is not None and control.enabled != self.enabled:
            self.enabled = control.enabled
            self._stats.event(f"{self._config.name} enabled={str(self.enabled).lower()}")
        self._settings_changed.set()
        self._status_dirty.set()

    def _answer(self, response: Response) -> None:
        sent = self._pending.pop(response.request_id, None)
        if sent is None:
            return  # an answer after the timeout
        self._answered.set()
        version = response.model.version if response.model else "?"
        self._stats.saw_version(version)
        if sent.injected:
            self._stats.record_injected(response.status.name)
            return
        correct = None
        if response.results:
            top = response.results[0].label
            if top != self.last_emotion or version != self.model_version:
                self._status_dirty.set()
            self.last_emotion, self.model_version = top, version
            if sent.label is not None:
                correct = top == EMOTIONS[sent.label]
        self._stats.record(time.monotonic() - sent.at, response.status.name, version, correct)
        if self._on_answer is not None:
            self._on_answer(self._config.name, response, sent.label)
