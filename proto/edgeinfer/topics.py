"""The application topics and content types: the only place that builds or parses topic strings.

QoS per topic: requests and results QoS 1 (at least once); runtime info and state QoS 1,
retained, and state is also the Last Will.
"""

from __future__ import annotations

from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

DEFAULT_ROOT = "emotion/v1"
REQUEST_QOS = 1
RESULT_QOS = 1
STATUS_QOS = 1

# mosquitto (1.6 and 2.0) publishes how many messages it dropped, every sys_interval seconds.
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"

ONLINE = b"online"
OFFLINE = b"offline"

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"

# Where a device may ask for its answers with an MQTT v5 Response Topic: its own result topic
# or below it. Placeholders: {root} (the topic root) and {device} (the requesting device).
DEFAULT_RESPONSE_FILTER = "{root}/{device}/result/#"
_MAX_TOPIC_BYTES = 65535


_NOT_IN_SEGMENT = frozenset("/+#\x00")


def segment(value: str) -> str:
    """Return ``value`` if it is a valid single topic level, else raise ``ValueError``."""
    if not value or not _NOT_IN_SEGMENT.isdisjoint(value):  # per answer: no generator
        raise ValueError(f"invalid topic segment: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Application topics under one root (default ``emotion/v1``)."""

    root: str = DEFAULT_ROOT
    response_filter: str = DEFAULT_RESPONSE_FILTER

    def request(self, device: str) -> str:
        """Where ``device`` publishes its requests."""
        return f"{self.root}/{segment(device)}/request"

    def result(self, device: str) -> str:
        """Where the runtime answers ``device`` when no Response Topic was given."""
        return f"{self.root}/{segment(device)}/result"

    @property
    def result_filter(self) -> str:
        """Subscription filter matching every device's result topic."""
        return f"{self.root}/+/result"

    def device_of_result(self, topic: str) -> str | None:
        """The ``<device>`` of a result topic, or ``None`` if ``topic`` is not one."""
        return self._device_of(topic, "/result")

    @property
    def request_filter(self) -> str:
        """Subscription filter matching every device's request topic."""
        return f"{self.root}/+/request"

    def request_subscription(self, share_group: str = "") -> str:
        """What a runtime subscribes to: every request, or its share of them in a group."""
        if share_group:
            return f"$share/{segment(share_group)}/{self.request_filter}"
        return self.request_filter

    def info(self, runtime_id: str) -> str:
        """Retained ServiceInfo of a runtime."""
        return f"{self.root}/runtime/{segment(runtime_id)}/info"

    def state(self, runtime_id: str) -> str:
        """Retained ``online``/``offline`` of a runtime (also its Last Will)."""
        return f"{self.root}/runtime/{segment(runtime_id)}/state"

    def device_of_request(self, topic: str) -> str | None:
        """The ``<device>`` of a request topic, or ``None`` if ``topic`` is not one."""
        return self._device_of(topic, "/request")

    def _device_of(self, topic: str, suffix: str) -> str | None:
        prefix = f"{self.root}/"
        if not topic.startswith(prefix) or not topic.endswith(suffix):
            return None
        device = topic[len(prefix) : -len(suffix)]
        if not device or "/" in device or device == "runtime":
            return None
        return device

    def response(self, device: str, requested: str) -> tuple[str, str]:
        """Where to answer ``device``, and why its Response Topic was not used ("" if it was).

        A Response Topic is honoured only inside ``response_filter`` for that device: the
        runtime may write every device's result topic, so honouring any topic would let one
        device answer into another's (a confused deputy the broker's ACL cannot stop).
        """
        own = self.result(device)
        if not requested or requested == own:
            return own, ""
        if (
            any(c in requested for c in "+#\x00")
            or requested.startswith("$")
            or len(requested.encode("utf-8", "surrogatepass")) > _MAX_TOPIC_BYTES
        ):
            return own, "invalid"
        if not self.response_filter:
            return own, "disabled"
        allowed = self.response_filter.format(root=self.root, device=device)
        if not topic_matches_sub(allowed, requested):
            return own, "outside_filter"
        return requested, ""
