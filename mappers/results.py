"""The inference-result mapper: what each camera sees, as twin actual values.

Subscribes to every camera's result topic (``<root>/+/result``), keeps the labels of each
camera's recent answers and reports ``last_emotion`` and ``emotion_counts`` (for example
``happy:12,neutral:5,sad:1``: KubeEdge's value charset) on change, at most once per interval,
so ``kubectl get device <camera> -o yaml`` shows it.

On KubeEdge 1.15+ the reports go over DMI, report-only: the cameras' protocol belongs to the
camera mapper (one mapper per protocol), and edgecore takes reports from any client.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping

import aiomqtt

from edgeinfer.topics import Topics
from edgeinfer.twins import EMOTION_COUNTS, LAST_EMOTION
from edgeinfer.v1 import inference_pb2
from edgeinfer.wire import WireFormat, parse
from kubeedge_twin import TwinClient, TwinTopics, sanitize_value
from kubeedge_twin.dmi.mapper import DmiMapper
from kubeedge_twin.link import TwinLink
from mappers.metrics import MapperMetrics
from mappers.profile import MappedDevice
from mappers.reporter import BoundedReporter, Send, hand_over
from mappers.session import every_until_done, twin_publisher

_LOGGER = logging.getLogger(__name__)


def encode_counts(labels: collections.Counter[str]) -> str:
    """``label:count`` pairs, most frequent first, in KubeEdge's twin value charset."""
    ranked = sorted(labels.items(), key=lambda item: (-item[1], item[0]))
    return ",".join(f"{sanitize_value(label)}:{count}" for label, count in ranked)


class _Window:
    """The labels of one camera's last ``size`` faces."""

    def __init__(self, size: int) -> None:
        self.labels: collections.deque[str] = collections.deque(maxlen=size)
        self.last = ""

    def add(self, response: inference_pb2.InferenceResponse) -> dict[str, str]:
        for result in response.results:
            self.labels.append(result.label)
        self.last = response.results[0].label
        return self.values()

    def values(self) -> dict[str, str]:
        if not self.labels:
            return {}
        return {
            LAST_EMOTION: sanitize_value(self.last),
            EMOTION_COUNTS: encode_counts(collections.Counter(self.labels)),
        }


class ResultMapper:
    """Aggregates answers per camera into twin actual values.

    Args:
        devices: The cameras (only devices with ``last_emotion``/``emotion_counts`` twins).
        topics: DeviceTwin topic layout.
        topic_root: Application topic root of the result topics.
        window: How many recent faces ``emotion_counts`` covers.
        report_interval_s: Least time between two twin reports of one camera.
        resync_s: How often to send the current values again (heals an edgecore restart).
        metrics: Counters.
        dmi: KubeEdge 1.15+: a report-only DMI mapper (its ``run`` must run beside the
            sessions); twins then go over DMI, not MQTT.
    """

    def __init__(
        self,
        devices: list[MappedDevice],
        *,
        topics: TwinTopics,
        topic_root: str = "emotion/v1",
        window: int = 100,
        report_interval_s: float = 5.0,
        resync_s: float = 30.0,
        metrics: MapperMetrics | None = None,
        dmi: DmiMapper | None = None,
    ) -> None:
        self._devices = {d.ref.name: d for d in devices}
        self._dmi_twins: dict[str, TwinLink] = (
            {name: dmi.follow(d.ref.namespace, name) for name, d in self._devices.items()}
            if dmi is not None
            else {}
        )
        self._topics = topics
        self._results = Topics(topic_root)
        self._window = window
        self._interval_s = report_interval_s
        self._resync_s = resync_s
        self.metrics = metrics or MapperMetrics("results")
        self._windows = {name: _Window(window) for name in self._devices}  # kept across sessions

    async def session(self, client: aiomqtt.Client) -> None:
        """Serve one connection until it drops."""
        reporters = {}
        for name, device in self._devices.items():
            twin = self._dmi_twins.get(name) or TwinClient(
                device.ref, topics=self._topics, publish=twin_publisher(client)
            )
            reporters[name] = BoundedReporter(device, self._sender(twin, device), self._interval_s)
        await client.subscribe(self._results.result_filter, 1)
        async with asyncio.TaskGroup() as tg:
            for reporter in reporters.values():
                tg.create_task(reporter.run())
            receiver = tg.create_task(self._receive(client, reporters))

            async def resync() -> None:
                for name, reporter in reporters.items():
                    reporter.forget()  # an edgecore restart is invisible on the broker
                    reporter.offer(self._windows[name].values())

            await every_until_done(receiver, self._resync_s, resync)

    def _sender(self, twin: TwinLink, device: MappedDevice) -> Send:
        async def send(values: Mapping[str, str]) -> None:
            types = {name: device.twins[name] for name in values}
            hand_over(self.metrics, "twin", lambda: twin.report(values, types))

        return send

    async def _receive(
        self, client: aiomqtt.Client, reporters: Mapping[str, BoundedReporter]
    ) -> None:
        async for message in client.messages:
            topic, payload = message.topic.value, message.payload
            camera = self._results.device_of_result(topic)
            reporter = reporters.get(camera or "")
            if camera is None or reporter is None or not isinstance(payload, bytes):
                self.metrics.refused("unknown_device")
                continue
            wire = WireFormat.of(getattr(message.properties, "ContentType", "") or "")
            try:
                response = parse(payload, inference_pb2.InferenceResponse(), wire)
            except ValueError as exc:
                self.metrics.refused("result")
                _LOGGER.warning("camera %s: %s", camera, exc)
                continue
            self.metrics.took("result")
            if response.status == inference_pb2.STATUS_OK and response.results:
                reporter.offer(self._windows[camera].add(response))
