"""How a model wants its 0..255 pixels scaled: the one spelling of ``Normalization`` in Python."""

from __future__ import annotations

import enum

from edgeinfer.v1 import inference_pb2


class Normalization(enum.StrEnum):
    """The ``Normalization`` of ``inference.proto``, by the names manifests and flags use."""

    UNIT = "unit"  # x / 255: [0, 1]
    SYMMETRIC = "symmetric"  # (x / 255 - 0.5) * 2: [-1, 1]
    NONE = "none"  # 0..255 as floats

    @classmethod
    def from_proto(cls, value: int) -> Normalization:
        """The member of a protobuf enum number (unknown numbers: ``NONE``)."""
        return _FROM_PROTO.get(value, cls.NONE)

    @property
    def proto(self) -> inference_pb2.Normalization:
        """The protobuf enum number."""
        return _TO_PROTO[self]


_TO_PROTO: dict[Normalization, inference_pb2.Normalization] = {
    Normalization.UNIT: inference_pb2.NORMALIZATION_UNIT,
    Normalization.SYMMETRIC: inference_pb2.NORMALIZATION_SYMMETRIC,
    Normalization.NONE: inference_pb2.NORMALIZATION_NONE,
}
_FROM_PROTO: dict[int, Normalization] = {number: member for member, number in _TO_PROTO.items()}
