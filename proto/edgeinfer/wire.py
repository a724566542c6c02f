"""Payloads by content type: every program reads and writes the contract's messages the same way.

A message travels as protobuf (``application/x-protobuf``, also what an absent content type
means) or as protobuf's JSON mapping (``application/json``, field names as in the ``.proto``).
Content types are compared without parameters, so ``application/json; charset=utf-8`` is JSON.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from edgeinfer.topics import CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF

MessageT = TypeVar("MessageT", bound=Message)


class WireFormat(enum.Enum):
    """Encoding of a payload, chosen by the MQTT v5 content type."""

    PROTOBUF = "protobuf"
    JSON = "json"

    @classmethod
    def of(cls, content_type: str) -> WireFormat:
        """The format a content type names (JSON, or protobuf for anything else)."""
        media_type = content_type.partition(";")[0].strip().lower()
        return cls.JSON if media_type == CONTENT_TYPE_JSON else cls.PROTOBUF

    @property
    def content_type(self) -> str:
        """The content type to publish with."""
        return CONTENT_TYPE_JSON if self is WireFormat.JSON else CONTENT_TYPE_PROTOBUF


def parse(payload: bytes, message: MessageT, wire: WireFormat) -> MessageT:
    """Fill ``message`` from ``payload`` and return it.

    Raises:
        ValueError: the payload is not such a message in that format.
    """
    try:
        if wire is WireFormat.JSON:
            json_format.Parse(payload.decode("utf-8"), message)
        else:
            message.ParseFromString(payload)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a {message.DESCRIPTOR.name}: {exc}") from exc
    return message


def serialize(message: Message, wire: WireFormat) -> bytes:
    """``message`` as bytes in ``wire``'s format (JSON: compact, the .proto's field names)."""
    if wire is WireFormat.JSON:
        return json_format.MessageToJson(
            message, preserving_proto_field_name=True, indent=None
        ).encode("utf-8")
    return message.SerializeToString()
