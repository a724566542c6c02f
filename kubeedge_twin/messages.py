"""KubeEdge DeviceTwin messages with edgecore's exact JSON (SPEC §2).

Field names, omitted fields and nulls follow the Go struct tags of
``edge/pkg/devicetwin/dttype``: ``event_id`` and ``timestamp`` (ms) always present, twin
values always strings, ``optional`` emitted even when false, ``last`` null in documents for
new twins.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9-_.,:/@#]{1,128}$")
VALUE_PATTERN = re.compile(r"^[a-zA-Z0-9-_.,:/@#]{1,512}$")
TWIN_TYPES = ("string", "int", "float", "boolean", "deleted", "")


class TwinFormatError(ValueError):
    """A twin message or value does not follow KubeEdge's rules."""


def now_ms() -> int:
    """Milliseconds since the epoch, as edgecore stamps messages."""
    return time.time_ns() // 1_000_000


def new_event_id() -> str:
    """A fresh event id (UUID), as edgecore makes them."""
    return str(uuid.uuid4())


def check_key(key: str) -> str:
    """Return ``key`` if it matches KubeEdge's twin key pattern."""
    if not KEY_PATTERN.match(key):
        raise TwinFormatError(
            "The key of twin must only include upper or lowercase letters, number, english, "
            "and special letter - _ . , : / @ # and the length of key should be less than 128 bytes"
        )
    return key


def check_value(value: str) -> str:
    """Return ``value`` if it is empty or matches KubeEdge's twin value pattern."""
    if value and not VALUE_PATTERN.match(value):
        raise TwinFormatError(
            "The value of twin must only include upper or lowercase letters, number, english, "
            "and special letter - _ . , : / @ # and the length of value should be less than "
            "512 bytes"
        )
    return value


def sanitize_value(text: str, limit: int = 512) -> str:
    """Map free text into the twin value charset (spaces become ``_``, others dropped)."""
    cleaned = re.sub(r"\s+", "_", text.strip())
    cleaned = re.sub(r"[^a-zA-Z0-9\-_.,:/@#]", "", cleaned)
    return cleaned[:limit] or "unknown"


@dataclass(frozen=True, slots=True)
class TwinValue:
    """``{"value": ..., "metadata": {"timestamp": ms}}``; metadata omitted when unknown."""

    value: str | None
    timestamp: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Edgecore's JSON."""
        out: dict[str, Any] = {}
        if self.value is not None:
            out["value"] = self.value
        if self.timestamp is not None:
            out["metadata"] = {"timestamp": self.timestamp}
        return out

    @classmethod
    def from_json(cls, data: Any) -> TwinValue | None:
        """Parse, or ``None`` for null/absent."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise TwinFormatError("twin value must be an object")
        value = data.get("value")
        if value is not None and not isinstance(value, str):
            raise TwinFormatError("twin value must be a string")
        metadata = data.get("metadata") or {}
        stamp = metadata.get("timestamp") if isinstance(metadata, Mapping) else None
        return cls(value, int(stamp) if isinstance(stamp, int | float) else None)


@dataclass(frozen=True, slots=True)
class TwinVersion:
    """``{"cloud": n, "edge": n}``."""

    cloud: int = 0
    edge: int = 0

    def to_json(self) -> dict[str, int]:
        """Edgecore's JSON."""
        return {"cloud": self.cloud, "edge": self.edge}

    @classmethod
    def from_json(cls, data: Any) -> TwinVersion | None:
        """Parse, or ``None``."""
        if not isinstance(data, Mapping):
            return None
        return cls(int(data.get("cloud", 0)), int(data.get("edge", 0)))


@dataclass(frozen=True, slots=True)
class MsgTwin:
    """One twin: expected (desired), actual (reported), optional, type, versions."""

    expected: TwinValue | None = None
    actual: TwinValue | None = None
    optional: bool | None = None
    type: str | None = None
    expected_version: TwinVersion | None = None
    actual_version: TwinVersion | None = None

    def to_json(self, *, versions: bool = False) -> dict[str, Any]:
        """Edgecore's JSON; versions are stripped on MQTT unless asked for (SPEC §2.3)."""
        out: dict[str, Any] = {}
        if self.expected is not None:
            out["expected"] = self.expected.to_json()
        if self.actual is not None:
            out["actual"] = self.actual.to_json()
        if self.optional is not None:
            out["optional"] = self.optional
        if self.type is not None:
            out["metadata"] = {"type": self.type}
        if versions and self.expected_version is not None:
            out["expected_version"] = self.expected_version.to_json()
        if versions and self.actual_version is not None:
            out["actual_version"] = self.actual_version.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> MsgTwin:
        """Parse one twin entry."""
        if not isinstance(data, Mapping):
            raise TwinFormatError("twin entry must be an object")
        metadata = data.get("metadata")
        kind = metadata.get("type") if isinstance(metadata, Mapping) else None
        optional = data.get("optional")
        return cls(
            expected=TwinValue.from_json(data.get("expected")),
            actual=TwinValue.from_json(data.get("actual")),
            optional=optional if isinstance(optional, bool) else None,
            type=kind if isinstance(kind, str) else None,
            expected_version=TwinVersion.from_json(data.get("expected_version")),
            actual_version=TwinVersion.from_json(data.get("actual_version")),
        )


def _base(data: Mapping[str, Any]) -> tuple[str, int]:
    event_id = data.get("event_id", "")
    stamp = data.get("timestamp", 0)
    if not isinstance(event_id, str) or not isinstance(stamp, int | float):
        raise TwinFormatError("event_id must be a string and timestamp a number")
    return event_id, int(stamp)


def loads(payload: bytes) -> Mapping[str, Any]:
    """Parse a JSON object payload."""
    try:
        data = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TwinFormatError(f"Unmarshal update request body failed, err: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TwinFormatError("payload must be a JSON object")
    return data


def dumps(document: Mapping[str, Any]) -> bytes:
    """Compact JSON, as Go's encoder writes it."""
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class TwinMessage:
    """``DeviceTwinUpdate`` / ``DeviceTwinResult``: ``{event_id, timestamp, twin: {...}}``."""

    twin: Mapping[str, MsgTwin | None]
    event_id: str = ""
    timestamp: int = field(default_factory=now_ms)

    def to_json(self, *, versions: bool = False) -> dict[str, Any]:
        """Edgecore's JSON (a ``None`` twin is a deletion: ``null``)."""
        return {
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "twin": {
                name: None if twin is None else twin.to_json(versions=versions)
                for name, twin in self.twin.items()
            },
        }

    def encode(self, *, versions: bool = False) -> bytes:
        """Bytes for MQTT."""
        return dumps(self.to_json(versions=versions))

    @classmethod
    def decode(cls, payload: bytes) -> TwinMessage:
        """Parse; the ``twin`` key is required (SPEC §2.2)."""
        data = loads(payload)
        event_id, stamp = _base(data)
        if "twin" not in data:
            raise TwinFormatError("Update twin error, key:twin does not exist")
        twins = data["twin"]
        if not isinstance(twins, Mapping):
            raise TwinFormatError("twin must be an object")
        parsed = {
            check_key(str(name)): None if entry is None else MsgTwin.from_json(entry)
            for name, entry in twins.items()
        }
        return cls(parsed, event_id, stamp)


def report(values: Mapping[str, str], types: Mapping[str, str] | None = None) -> TwinMessage:
    """A ``twin/update`` that reports only ``actual`` values (an edge never sends expected).

    Raises:
        TwinFormatError: if a key or value breaks KubeEdge's patterns.
    """
    types = types or {}
    twins = {
        check_key(name): MsgTwin(actual=TwinValue(check_value(value)), type=types.get(name))
        for name, value in values.items()
    }
    return TwinMessage(twins)


@dataclass(frozen=True, slots=True)
class Delta:
    """``…/twin/update/delta``: all twins with an expected value, plus the mismatches."""

    twin: Mapping[str, MsgTwin]
    delta: Mapping[str, str]
    event_id: str = field(default_factory=new_event_id)
    timestamp: int = field(default_factory=now_ms)

    def encode(self) -> bytes:
        """Bytes for MQTT."""
        return dumps(
            {
                "event_id": self.event_id,
                "timestamp": self.timestamp,
                "twin": {name: twin.to_json() for name, twin in self.twin.items()},
                "delta": dict(self.delta),
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> Delta:
        """Parse a delta message."""
        data = loads(payload)
        event_id, stamp = _base(data)
        twins = data.get("twin") or {}
        delta = data.get("delta") or {}
        if not isinstance(twins, Mapping) or not isinstance(delta, Mapping):
            raise TwinFormatError("delta message must carry twin and delta objects")
        return cls(
            {str(k): MsgTwin.from_json(v) for k, v in twins.items()},
            {str(k): str(v) for k, v in delta.items()},
            event_id,
            stamp,
        )


@dataclass(frozen=True, slots=True)
class ErrorResult:
    """``{event_id, timestamp, code, reason}`` on a result topic."""

    code: int
    reason: str
    event_id: str = ""
    timestamp: int = field(default_factory=now_ms)

    def encode(self) -> bytes:
        """Bytes for MQTT."""
        return dumps(
            {
                "event_id": self.event_id,
                "timestamp": self.timestamp,
                "code": self.code,
                "reason": self.reason,
            }
        )


def error_of(data: Mapping[str, Any]) -> ErrorResult | None:
    """The error in a result payload, or ``None`` on success (no ``code`` field)."""
    code = data.get("code")
    if not isinstance(code, int) or code == 0:
        return None
    event_id, stamp = _base(data)
    return ErrorResult(code, str(data.get("reason", "")), event_id, stamp)


def desired_values(twins: Mapping[str, MsgTwin | None]) -> dict[str, str]:
    """Expected values of the twins that have one."""
    return {
        name: twin.expected.value
        for name, twin in twins.items()
        if twin is not None and twin.expected is not None and twin.expected.value
    }


def get_request(event_id: str = "") -> bytes:
    """Payload of ``…/twin/get``."""
    return dumps({"event_id": event_id, "timestamp": now_ms()})


def state_update(state: str) -> bytes:
    """Payload of ``…/state/update`` (1.4 accepts online, offline, unknown)."""
    return dumps({"event_id": "", "timestamp": now_ms(), "state": state})


def data_update(values: Mapping[str, str], types: Mapping[str, str] | None = None) -> bytes:
    """Payload of ``$ke/events/device/<id>/data/update`` (mappers-go ``CreateMessageData``).

    Raises:
        TwinFormatError: if a key or value breaks KubeEdge's patterns.
    """
    stamp = now_ms()
    types = types or {}
    data = {
        check_key(name): {
            "value": check_value(value),
            "metadata": {"timestamp": stamp, "type": types.get(name, "string")},
        }
        for name, value in values.items()
    }
    return dumps({"event_id": "", "timestamp": stamp, "data": data})
