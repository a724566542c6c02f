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

import asyncio
import json
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import aiomqtt

from edgeinfer.broker import SOCKET_OPTIONS, Broker
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

T = TypeVar("T")

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


def client_for(broker: str) -> aiomqtt.Client:
    """A clean-session client of ``broker`` (``mqtt://`` or ``mqtts://``)."""
    address = Broker.parse(broker)
    return aiomqtt.Client(
        address.host,
        address.port,
        tls_params=aiomqtt.TLSParameters() if address.tls else None,
        socket_options=list(SOCKET_OPTIONS),
    )


async def publish_cloud_update_async(
    broker: str, device_id: str, values: Mapping[str, str], timeout_s: float = 10.0
) -> None:
    """Give the simulated cloud desired values for ``device_id``; wait for the broker's ack.

    Raises:
        TimeoutError: if the broker does not acknowledge in time.
    """
    try:
        async with asyncio.timeout(timeout_s), client_for(broker) as client:
            await client.publish(desired_topic(device_id), cloud_update(values), qos=1)
    except TimeoutError:
        raise TimeoutError(f"broker {broker} did not acknowledge the twin update") from None


async def fetch_twins_async(broker: str, device_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """A device's twin document from edgecore (``twin/get``).

    Returns:
        The ``twin`` map of the ``get/result`` document: name → ``{expected, actual, ...}``.

    Raises:
        TimeoutError: if no answer arrives in time.
    """
    topic = f"{PREFIX}{device_id}"
    try:
        async with asyncio.timeout(timeout_s), client_for(broker) as client:
            await client.subscribe(topic + TWIN_GET_RESULT, qos=1)
            await client.publish(topic + TWIN_GET, get_request(f"get-{now_ms()}"), qos=1)
            async for message in client.messages:
                if isinstance(message.payload, bytes):
                    document = message.payload
                    break
    except TimeoutError:
        raise TimeoutError(f"no twin/get/result for {device_id} from {broker}") from None
    twins: dict[str, Any] = json.loads(document).get("twin") or {}
    return twins


def publish_cloud_update(
    broker: str, device_id: str, values: Mapping[str, str], timeout_s: float = 10.0
) -> None:
    """``publish_cloud_update_async``, blocking (for programs without an event loop)."""
    _blocking(publish_cloud_update_async(broker, device_id, values, timeout_s))


def fetch_twins(broker: str, device_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """``fetch_twins_async``, blocking (for programs without an event loop)."""
    return _blocking(fetch_twins_async(broker, device_id, timeout_s))


def _blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise RuntimeError("a blocking helper called on a running event loop: await its *_async form")


def twin_values(twins: Mapping[str, Any], side: str) -> dict[str, str]:
    """``expected`` (side="expected") or ``actual`` values of a twin map, by name."""
    values = {}
    for name, twin in twins.items():
        value = ((twin or {}).get(side) or {}).get("value")
        if value is not None:
            values[name] = str(value)
    return values
