"""The only place that builds or parses application topic strings.

QoS per topic: requests and results QoS 1 (at least once); runtime info and state QoS 1,
retained, and state is also the Last Will.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ROOT = "emotion/v1"
REQUEST_QOS = 1
RESULT_QOS = 1
STATUS_QOS = 1

ONLINE = b"online"
OFFLINE = b"offline"

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"


def segment(value: str) -> str:
    """Return ``value`` if it is a valid single topic level, else raise ``ValueError``."""
    if not value or any(c in value for c in "/+#\x00"):
        raise ValueError(f"invalid topic segment: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Application topics under one root (default ``emotion/v1``)."""

    root: str = DEFAULT_ROOT

    def request(self, device: str) -> str:
        """Where ``device`` publishes its requests."""
        return f"{self.root}/{segment(device)}/request"

    def result(self, device: str) -> str:
        """Where the runtime answers ``device`` when no Response Topic was given."""
        return f"{self.root}/{segment(device)}/result"

    @property
    def request_filter(self) -> str:
        """Subscription filter matching every device's request topic."""
        return f"{self.root}/+/request"

    def info(self, runtime_id: str) -> str:
        """Retained ServiceInfo of a runtime."""
        return f"{self.root}/runtime/{segment(runtime_id)}/info"

    def state(self, runtime_id: str) -> str:
        """Retained ``online``/``offline`` of a runtime (also its Last Will)."""
        return f"{self.root}/runtime/{segment(runtime_id)}/state"

    def device_of_request(self, topic: str) -> str | None:
        """The ``<device>`` of a request topic, or ``None`` if ``topic`` is not one."""
        prefix = f"{self.root}/"
        if not topic.startswith(prefix) or not topic.endswith("/request"):
            return None
        device = topic[len(prefix) : -len("/request")]
        if not device or "/" in device or device == "runtime":
            return None
        return device
