"""A lean load generator: pre-rendered faces, one socket, one thread, closed or open loop.

Lighter than the device fleet (no rendering or detection per frame), so on a 2-core machine
it leaves the cores to the server under test. Latency is from the *intended* send time in
open loop (no coordinated omission) and from the send in closed loop.

It speaks MQTT v5 over a plain socket with the ``mqtt5`` codec, and the thread that calls a
run both sends and receives: paho's network thread and a sending thread sharing the GIL had
stalled answers for 20-30 ms every 55-60 ms at half load (``HOT-PATH.md``), a p99 of the
load generator rather than of the server. Between runs nothing reads the socket.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mqtt5
import numpy as np
from hdrh.histogram import HdrHistogram

from device_sim.preprocessing import crop_face
from edge_runtime import InputSpec, Normalization
from edgeinfer.faces import FaceRenderer
from edgeinfer.v1 import inference_pb2 as pb

_QOS_1 = mqtt5.QoS.AT_LEAST_ONCE
_READ_SIZE = 1 << 18
_IDLE_S = 600  # the longest a load generator waits between runs


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load run measured."""

    mode: str
    load: float  # devices in flight (closed) or requests/s offered (open)
    seconds: float
    sent: int
    answered: int
    errors: int
    lost: int
    faces_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p99_9_ms: float
    server_p99_ms: float = 0.0  # the server's own timings.total_us (receipt to answer)


def _faces(count: int) -> list[bytes]:
    """Faces cropped as a camera does (64x64x1 uint8, the default model's input)."""
    renderer, spec = FaceRenderer(7), InputSpec(64, 64, 1, Normalization.SYMMETRIC)
    faces = []
    for _ in range(count):
        rendered = renderer.render()
        face = crop_face(rendered.frame, rendered.box, spec, margin=0.0)
        faces.append(np.ascontiguousarray(face.pixels).tobytes())
    return faces


class Load:
    """Sends requests for ``devices`` devices on the broker at ``port`` and times answers.

    Not thread-safe: one thread makes it, sends and runs it (an ``at`` action of
    :meth:`open_loop` runs in a timer thread and must not touch it).
    """

    def __init__(self, port: int, devices: int, root: str = "emotion/v1") -> None:
        self._root = root
        self._names = [f"bench-{i:03d}" for i in range(devices)]
        self._faces = _faces(16)
        self._counter = itertools.count()
        self._run = f"{time.time_ns():x}"
        self._sent: dict[str, tuple[float, str]] = {}
        self.histogram = HdrHistogram(1, 60_000_000, 3)
        self.server = HdrHistogram(1, 60_000_000, 3)  # the server's own receipt-to-answer
        self.samples: list[tuple[float, float]] = []  # (send time, latency s), for windows
        self.answered = self.errors = 0
        self._closed = False
        self._ids = itertools.cycle(range(1, 0x10000))
        self._unacked = 0
        self._waiting: collections.deque[bytes] = collections.deque()  # past Receive Maximum
        self._out = bytearray()
        self._in = b""
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._receive_max = self._handshake(f"load-{time.time_ns()}")
        self._socket.setblocking(False)

    def _handshake(self, client_id: str) -> int:
        """CONNECT and SUBSCRIBE; the broker's Receive Maximum."""
        self._socket.sendall(mqtt5.ConnectPacket(client_id, clean_start=True).write())
        connack = self._await(mqtt5.ConnAckPacket)
        if connack.reason_code != mqtt5.ConnAckReasonCode.SUCCESS:
            raise ConnectionError(f"load generator refused: {connack.reason_code}")
        # Nothing pings between runs: mosquitto answers "none" with its max_keepalive (65535 s).
        if 0 < (connack.server_keep_alive or 0) < _IDLE_S:
            raise ConnectionError(f"the broker keeps {connack.server_keep_alive} s alive")
        topics = [mqtt5.TopicFilter(f"{self._root}/+/result", max_qos=_QOS_1)]
        self._socket.sendall(mqtt5.SubscribePacket(next(self._ids), topics).write())
        self._await(mqtt5.SubAckPacket)
        return int(connack.receive_max)

    def _await(self, kind: type[Any]) -> Any:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                packet, used = mqtt5.read(memoryview(self._in))
            except IndexError:  # not all there yet
                chunk = self._socket.recv(_READ_SIZE)
                if not chunk:
                    raise ConnectionError("the broker closed the connection") from None
                self._in += chunk
                continue
            self._in = self._in[used:]
            if isinstance(packet, kind):
                return packet
        raise TimeoutError(f"load generator got no {kind.__name__}")

    def send(self, device: str, intended: float | None = None) -> None:
        """Queue one one-face request for ``device`` (written on the next turn of a run)."""
        number = next(self._counter)
        # Unique across runs: the runtime answers a request id it answered before from its
        # cache of recent answers (a device's retry), without running the model.
        request_id = f"{device}-{self._run}-{number}"
        tensor = pb.Tensor(shape=[64, 64, 1], dtype=pb.DATA_TYPE_UINT8)
        tensor.data = self._faces[number % len(self._faces)]
        message = pb.InferenceRequest(
            request_id=request_id, device_id=device, faces=[pb.Face(pixels=tensor)]
        )
        self._sent[request_id] = (intended or time.perf_counter(), device)
        packet = mqtt5.PublishPacket(
            f"{self._root}/{device}/request",
            message.SerializeToString(),
            qos=_QOS_1,
            packet_id=next(self._ids),
        ).write()
        if self._unacked < self._receive_max:
            self._unacked += 1
            self._out += packet
        else:
            self._waiting.append(packet)

    def _turn(self, timeout_s: float) -> None:
        """Write what is queued, then read and handle what arrives within ``timeout_s``."""
        if self._out:
            try:
                written = self._socket.send(self._out)
            except BlockingIOError:
                written = 0
            del self._out[:written]
        writers = [self._socket] if self._out else []
        readable, _, _ = select.select([self._socket], writers, [], max(0.0, timeout_s))
        if not readable:
            return
        try:
            chunk = self._socket.recv(_READ_SIZE)
        except BlockingIOError:
            return
        if not chunk:
            raise ConnectionError("the broker closed the load generator's connection")
        data = memoryview(self._in + chunk if self._in else chunk)
        start = 0
        while start < len(data):
            try:
                packet, used = mqtt5.read(data[start:])
            except IndexError:
                break
            start += used
            if isinstance(packet, mqtt5.PublishPacket):
                if packet.packet_id is not None:
                    self._out += mqtt5.PubAckPacket(packet.packet_id).write()
                self._answer(packet.payload)
            elif isinstance(packet, mqtt5.PubAckPacket):
                if self._waiting:
                    self._out += self._waiting.popleft()
                else:
                    self._unacked -= 1
        self._in = bytes(data[start:])

    def _answer(self, payload: bytes) -> None:
        response = pb.InferenceResponse.FromString(payload)
        now = time.perf_counter()
        sent = self._sent.pop(response.request_id, None)
        if sent is None:
            return
        self.histogram.record_value(max(1, int((now - sent[0]) * 1e6)))
        if response.timings.total_us:
            self.server.record_value(max(1, response.timings.total_us))
        self.samples.append((sent[0], now - sent[0]))
        self.answered += 1
        self.errors += response.status != pb.STATUS_OK
        if self._closed:
            self.send(sent[1])

    def pump(self, seconds: float) -> None:
        """Send what is queued and handle answers for ``seconds``."""
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            self._turn(left)

    def _result(self, mode: str, load: float, seconds: float, sent: int) -> LoadResult:
        h = self.histogram
        return LoadResult(
            mode,
            load,
            seconds,
            sent,
            self.answered,
            self.errors,
            len(self._sent),
            self.answered / seconds,
            h.get_value_at_percentile(50) / 1000,
            h.get_value_at_percentile(90) / 1000,
            h.get_value_at_percentile(99) / 1000,
            h.get_value_at_percentile(99.9) / 1000,
            self.server.get_value_at_percentile(99) / 1000,
        )

    def _reset(self) -> None:
        self.histogram.reset()
        self.server.reset()
        self.samples.clear()
        self.answered = self.errors = 0

    def _drain(self, timeout_s: float = 5.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while self._sent and (left := deadline - time.perf_counter()) > 0:
            self._turn(min(left, 0.05))

    def closed_loop(
        self, seconds: float, warmup_s: float = 0.5, window: Callable[[], None] | None = None
    ) -> LoadResult:
        """Every device keeps one request in flight; throughput and latency after warm-up.

        ``window`` is called as the measured window opens and as it closes (to read CPU
        counters over exactly the faces counted).
        """
        self._closed = True
        for device in self._names:
            self.send(device)
        self.pump(warmup_s)
        self._reset()
        if window is not None:
            window()
        start = next(self._counter)
        self.pump(seconds)
        answered = self.answered
        if window is not None:
            window()
        self._closed = False
        sent = next(self._counter) - start
        self._drain()
        result = self._result("closed", len(self._names), seconds, sent)
        return dataclasses.replace(result, faces_per_s=answered / seconds)

    def open_loop(
        self, rate: float, seconds: float, at: tuple[float, Any] | None = None
    ) -> LoadResult:
        """Offer ``rate`` requests/s spread over the devices, on a fixed schedule.

        ``at=(t, action)`` calls ``action()`` (in a thread) ``t`` seconds into the run.
        """
        self._reset()
        if at is not None:
            threading.Timer(at[0], at[1]).start()
        period = 1.0 / rate
        begin = time.perf_counter()
        count = int(rate * seconds)
        index = 0
        while index < count:
            now = time.perf_counter()
            while index < count and (intended := begin + index * period) <= now:
                self.send(self._names[index % len(self._names)], intended)
                index += 1
            # select() waits to the microsecond, where epoll's timeout is in milliseconds.
            self._turn(begin + index * period - time.perf_counter())
        self._drain()
        elapsed = time.perf_counter() - begin
        return self._result("open", rate, min(elapsed, seconds), count)

    def close(self) -> None:
        """Disconnect."""
        try:
            self._socket.setblocking(True)
            self._socket.sendall(bytes(self._out) + mqtt5.DisconnectPacket().write())
        except OSError:
            pass  # the broker is gone already
        finally:
            self._socket.close()
