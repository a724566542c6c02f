"""The KubeEdge DeviceTwin protocol as a production program needs it.

Topics, typed twin messages, an async twin client (MQTT, KubeEdge 1.4-1.14), a DMI mapper
(KubeEdge 1.15+) and Device YAML reading. What plays KubeEdge on one machine (the edgecore
stand-in, the simulated cloud) lives in ``kubeedge_sim``.
"""

from kubeedge_twin.client import TwinClient, TwinError, TwinSource
from kubeedge_twin.crd import DeviceDefinition, load_definitions
from kubeedge_twin.messages import (
    Delta,
    ErrorResult,
    MsgTwin,
    TwinFormatError,
    TwinMessage,
    TwinValue,
    TwinVersion,
    check_value,
    sanitize_value,
)
from kubeedge_twin.topics import DeviceRef, Layout, TwinTopics

__all__ = [
    "Delta",
    "DeviceDefinition",
    "DeviceRef",
    "ErrorResult",
    "Layout",
    "MsgTwin",
    "TwinClient",
    "TwinError",
    "TwinFormatError",
    "TwinMessage",
    "TwinSource",
    "TwinTopics",
    "TwinValue",
    "TwinVersion",
    "check_value",
    "load_definitions",
    "sanitize_value",
]
