"""The KubeEdge DeviceTwin protocol: topics, typed twin messages, a twin client, a stand-in."""

from kubeedge_twin.client import TwinClient, TwinError, TwinSource
from kubeedge_twin.crd import load_definitions
from kubeedge_twin.engine import DeviceDefinition, TwinEngine
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
from kubeedge_twin.standin import EdgecoreStandIn
from kubeedge_twin.store import TwinStore
from kubeedge_twin.topics import DeviceRef, Layout, TwinTopics

__all__ = [
    "Delta",
    "DeviceDefinition",
    "DeviceRef",
    "EdgecoreStandIn",
    "ErrorResult",
    "Layout",
    "MsgTwin",
    "TwinClient",
    "TwinEngine",
    "TwinError",
    "TwinFormatError",
    "TwinMessage",
    "TwinSource",
    "TwinStore",
    "TwinTopics",
    "TwinValue",
    "TwinVersion",
    "check_value",
    "load_definitions",
    "sanitize_value",
]
