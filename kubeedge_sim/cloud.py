"""The cloud side on one machine: desired twin values for the simulated cloud, twins read back.

The simulated cloud (the edgecore stand-in, or kubeedge-sim's CloudHub in front of a real
edgecore) takes desired values on a topic of its own, ``kubeedge-sim/cloud/<device id>/desired``,
that no edgecore subscribes to: the payload is what the 1.4 cloud sends as ``cloud_updated``
(SPEC §2.8: expected values with ``expected_version = {cloud: <resourceVersion>, edge: 0}``), and
the simulated cloud turns it into what a Device edit makes cloudcore send. (Publishing
``twin/cloud_updated`` on the broker instead reaches edgecore's devicetwin directly, which the
cloud never does: edgecore v1.23.1's twin module panics on one without twin metadata.) Against a
real cluster, edit the Device resource instead (``cloud-trainer push --backend kubernetes``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeinfer.broker import Broker
from kubeedge_twin.messages import (
    MsgTwin,
    TwinMessage,
    TwinValue,
    TwinVersion,
    check_value,
    get_request,
    now_ms,
)
from kubeedge_twin.topics import PREFIX, TWIN_GET, TWIN_GET_RESULT

SIM_CLOUD = "kubeedge-sim/cloud/"
SIM_DESIRED = "/desired"
# device ids: <name> (KubeEdge 1.4) or <namespace>/<name> (1.17+)
SIM_DESIRED_FILTERS = (f"{SIM_CLOUD}+{SIM_DESIRED}", f"{SIM_CLOUD}+/+{SIM_DESIRED}")


def desired_topic(device_id: str) -> str:
    """Where the simulated cloud takes desired values for ``device_id``."""
    return f"{SIM_CLOUD}{device_id}{SIM_DESIRED}"


def device_of(topic: str) -> str | None:
    """The device id of a ``desired_topic``, or None for another topic."""
    if not (topic.startswith(SIM_CLOUD) and topic.endswith(SIM_DESIRED)):
        return None
    return topic[len(SIM_CLOUD) : -len(SIM_DESIRED)] or None


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


def _connected_client(broker: str) -> mqtt.Client:
    """A clean-session paho client connected to ``broker`` with its network loop running."""
    address = Broker.parse(broker)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    if address.tls:
        client.tls_set()
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()
    return client


def publish_cloud_update(
    broker: str, device_id: str, values: Mapping[str, str], timeout_s: float = 10.0
) -> None:
    """Give the simulated cloud desired values for ``device_id``; wait for the broker's ack.

    Raises:
        TimeoutError: if the broker does not acknowledge in time.
    """
    client = _connected_client(broker)
    try:
        info = client.publish(desired_topic(device_id), cloud_update(values), qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"broker {broker} did not acknowledge the twin update")
    finally:
        client.disconnect()
        client.loop_stop()


def fetch_twins(broker: str, device_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """A device's twin document from edgecore (``twin/get``; blocking).

    Returns:
        The ``twin`` map of the ``get/result`` document: name → ``{expected, actual, ...}``.

    Raises:
        TimeoutError: if no answer arrives in time.
    """
    answer = threading.Event()
    documents: list[bytes] = []
    topic = f"{PREFIX}{device_id}"

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        documents.append(bytes(message.payload))
        answer.set()

    client = _connected_client(broker)
    client.on_message = on_message
    try:
        client.subscribe(topic + TWIN_GET_RESULT, qos=1)
        client.publish(topic + TWIN_GET, get_request(f"get-{now_ms()}"), qos=1)
        if not answer.wait(timeout_s):
            raise TimeoutError(f"no twin/get/result for {device_id} from {broker}")
    finally:
        client.disconnect()
        client.loop_stop()
    twins: dict[str, Any] = json.loads(documents[0]).get("twin") or {}
    return twins


def twin_values(twins: Mapping[str, Any], side: str) -> dict[str, str]:
    """``expected`` (side="expected") or ``actual`` values of a twin map, by name."""
    values = {}
    for name, twin in twins.items():
        value = ((twin or {}).get(side) or {}).get("value")
        if value is not None:
            values[name] = str(value)
    return values
