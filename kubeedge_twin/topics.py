"""KubeEdge EventBus DeviceTwin topics, for the 1.4 and the >= 1.17 layouts (SPEC §1).

1.4: ``$hw/events/device/<name>/...``; >= 1.17: ``$hw/events/device/<namespace>/<name>/...``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

PREFIX = "$hw/events/device/"
NODE_PREFIX = "$hw/events/node/"
# Parse and validation errors are published with an empty device id (SPEC §2.6).
ERROR_RESULT_TOPIC = "$hw/events/device//twin/update/result"

TWIN_UPDATE = "/twin/update"
TWIN_UPDATE_RESULT = "/twin/update/result"
TWIN_UPDATE_DOCUMENT = "/twin/update/document"
TWIN_UPDATE_DELTA = "/twin/update/delta"
TWIN_GET = "/twin/get"
TWIN_GET_RESULT = "/twin/get/result"
TWIN_CLOUD_UPDATED = "/twin/cloud_updated"
STATE_UPDATE = "/state/update"
STATE_UPDATE_RESULT = "/state/update/result"
MEMBERSHIP_GET = "/membership/get"
MEMBERSHIP_GET_RESULT = "/membership/get/result"
MEMBERSHIP_UPDATED = "/membership/updated"

_SUFFIXES = (
    TWIN_UPDATE_RESULT,
    TWIN_UPDATE_DOCUMENT,
    TWIN_UPDATE_DELTA,
    TWIN_GET_RESULT,
    STATE_UPDATE_RESULT,
    TWIN_UPDATE,
    TWIN_GET,
    TWIN_CLOUD_UPDATED,
    STATE_UPDATE,
)
_NAME = re.compile(r"^[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")


class Layout(enum.StrEnum):
    """Which KubeEdge release's topic layout edgecore uses."""

    V1_4 = "1.4"
    V1_17 = "1.17"


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A KubeEdge device as the topics name it."""

    name: str
    namespace: str = "default"

    def __post_init__(self) -> None:
        for value in (self.name, self.namespace):
            if not _NAME.match(value):
                raise ValueError(f"invalid KubeEdge device or namespace name: {value!r}")


@dataclass(frozen=True, slots=True)
class TwinTopics:
    """Builds and parses DeviceTwin topics in one layout."""

    layout: Layout = Layout.V1_4

    def device_id(self, device: DeviceRef) -> str:
        """The id edgecore uses: ``name`` (1.4) or ``namespace/name`` (>= 1.17)."""
        if self.layout is Layout.V1_4:
            return device.name
        return f"{device.namespace}/{device.name}"

    def topic(self, device: DeviceRef, suffix: str) -> str:
        """``$hw/events/device/<id><suffix>``."""
        return f"{PREFIX}{self.device_id(device)}{suffix}"

    def node_topic(self, node: str, suffix: str) -> str:
        """``$hw/events/node/<node><suffix>``."""
        return f"{NODE_PREFIX}{node}{suffix}"

    def device_filter(self, suffix: str) -> str:
        """Subscription filter for ``suffix`` of every device in this layout."""
        levels = "+" if self.layout is Layout.V1_4 else "+/+"
        return f"{PREFIX}{levels}{suffix}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(device id, suffix)`` of a device topic in this layout, else ``None``.

        The device id may be empty (the error topic).
        """
        if not topic.startswith(PREFIX):
            return None
        rest = topic[len(PREFIX) :]
        for suffix in _SUFFIXES:
            if rest.endswith(suffix):
                device_id = rest[: -len(suffix)]
                levels = 0 if not device_id else device_id.count("/") + 1
                expected = 1 if self.layout is Layout.V1_4 else 2
                if device_id and levels != expected:
                    return None
                return device_id, suffix
        return None

    def ref(self, device_id: str) -> DeviceRef:
        """The ``DeviceRef`` of an id in this layout."""
        if self.layout is Layout.V1_4:
            return DeviceRef(device_id)
        namespace, _, name = device_id.partition("/")
        return DeviceRef(name, namespace)


DATA_PREFIX = "$ke/events/device/"
DATA_UPDATE = "/data/update"


def data_topic(device_id: str) -> str:
    """``$ke/events/device/<id>/data/update``: a mapper's data properties (not for edgecore)."""
    return f"{DATA_PREFIX}{device_id}{DATA_UPDATE}"
