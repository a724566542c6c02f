"""A light load generator: pre-rendered faces, one paho client, closed or open loop.

Lighter than the device fleet (no rendering or detection per frame), so on a 2-core machine
it leaves the cores to the server under test. Latency is from the *intended* send time in
open loop (no coordinated omission) and from the send in closed loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from hdrh.histogram import HdrHistogram
from paho.mqtt.enums import CallbackAPIVersion

from device_sim.preprocessing import crop_face
from edge_runtime import InputSpec, Normalization
from edgeinfer.faces import FaceRenderer
from edgeinfer.v1 import inference_pb2 as pb


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
    """Sends requests for ``devices`` devices on the broker at ``port`` and times answers."""

    def __init__(self, port: int, devices: int, root: str = "emotion/v1") -> None:
        self._root = root
        self._names = [f"bench-{i:03d}" for i in range(devices)]
        self._faces = _faces(16)
        self._counter = itertools.count()
        self._run = f"{time.time_ns():x}"
        self._lock = threading.Lock()
        self._sent: dict[str, tuple[float, str]] = {}
        self.histogram = HdrHistogram(1, 60_000_000, 3)
        self.server = HdrHistogram(1, 60_000_000, 3)  # the server's own receipt-to-answer
        self.samples: list[tuple[float, float]] = []  # (send time, latency s), for windows
        self.answered = self.errors = 0
        self._closed = False
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"load-{time.time_ns()}")
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)
        self._client.on_socket_open = self._nodelay
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("load generator could not subscribe")

    @staticmethod
    def _nodelay(_c: Any, _u: Any, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        client.subscribe(f"{self._root}/+/result", qos=1)
        client.on_subscribe = lambda *_: self._connected.set()

    def send(self, device: str, intended: float | None = None) -> None:
        """Publish one one-face request for ``device``."""
        number = next(self._counter)
        # Unique across runs: the runtime answers a request id it answered before from its
        # cache of recent answers (a device's retry), without running the model.
        request_id = f"{device}-{self._run}-{number}"
        tensor = pb.Tensor(shape=[64, 64, 1], dtype=pb.DATA_TYPE_UINT8)
        tensor.data = self._faces[number % len(self._faces)]
        message = pb.InferenceRequest(
            request_id=request_id, device_id=device, faces=[pb.Face(pixels=tensor)]
        )
        with self._lock:
            self._sent[request_id] = (intended or time.perf_counter(), device)
        self._client.publish(f"{self._root}/{device}/request", message.SerializeToString(), qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        response = pb.InferenceResponse.FromString(bytes(message.payload))
        now = time.perf_counter()
        with self._lock:
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
        deadline = time.monotonic() + timeout_s
        while self._sent and time.monotonic() < deadline:
            time.sleep(0.01)

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
        time.sleep(warmup_s)
        self._reset()
        if window is not None:
            window()
        start = next(self._counter)
        time.sleep(seconds)
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
        for index in range(count):
            intended = begin + index * period
            delay = intended - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.send(self._names[index % len(self._names)], intended)
        self._drain()
        elapsed = time.perf_counter() - begin
        return self._result("open", rate, min(elapsed, seconds), count)

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()
