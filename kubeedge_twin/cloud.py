"""The cloud side on one machine: set desired twin values through ``twin/cloud_updated``.

This is what the 1.4 cloud sends to edgecore (SPEC §2.8): expected values with
``expected_version = {cloud: <resourceVersion>, edge: 0}``. Against a real cluster, edit the
Device resource instead (``cloud-trainer push --backend kubernetes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kubeedge_twin.messages import MsgTwin, TwinMessage, TwinValue, TwinVersion, check_value, now_ms
from kubeedge_twin.topics import PREFIX, TWIN_CLOUD_UPDATED


def cloud_update(values: Mapping[str, str], resource_version: int | None = None) -> bytes:
    """The ``cloud_updated`` payload setting ``values`` as expected."""
    version = TwinVersion(resource_version or now_ms(), 0)
    twins: dict[str, MsgTwin | None] = {
        name: MsgTwin(
            expected=TwinValue(check_value(value), now_ms()),
            optional=False,
            expected_version=version,
        )
        for name, value in values.items()
    }
    return TwinMessage(twins).encode(versions=True)


def publish_cloud_update(
    broker: str, device_id: str, values: Mapping[str, str], timeout_s: float = 10.0
) -> None:
    """Publish a ``cloud_updated`` for ``device_id`` and wait for the broker's ack (blocking).

    Raises:
        TimeoutError: if the broker does not acknowledge in time.
    """
    url = urlsplit(broker)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(
            f"{PREFIX}{device_id}{TWIN_CLOUD_UPDATED}", cloud_update(values), qos=1
        )
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"broker {broker} did not acknowledge the twin update")
    finally:
        client.disconnect()
        client.loop_stop()
