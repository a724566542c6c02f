"""Property-based fuzzing of request decoding: any bytes give a Request or a PayloadError."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.codec import decode_request, encode_request
from edge_runtime.errors import PayloadError
from edge_runtime.messages import FacePixels, Request, WireFormat
from edgeinfer.v1 import inference_pb2 as pb

_VALID = encode_request(
    Request("r", "cam", 1, (FacePixels(np.full((8, 8, 1), 7, np.uint8)),)), WireFormat.PROTOBUF
)


def _decode(payload: bytes, wire: WireFormat) -> None:
    """Decoding gives a well-formed Request or a PayloadError with a message and a reason."""
    error: PayloadError | None = None
    try:
        request = decode_request(payload, wire, topic_device="cam", max_faces=8, max_face_side=512)
    except PayloadError as exc:
        error = exc
    if error is not None:
        assert str(error)
        assert error.reason
        return
    assert request.faces
    for pixels in (face.pixels for face in request.faces):
        assert pixels.ndim == 3
        assert pixels.shape[2] in (1, 3)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_as_protobuf(payload: bytes) -> None:
    _decode(payload, WireFormat.PROTOBUF)


@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 7)), max_size=4))
def test_bit_flips_in_a_valid_request(flips: list[tuple[int, int]]) -> None:
    payload = bytearray(_VALID)
    for offset, bit in flips:
        payload[offset] ^= 1 << bit
    _decode(bytes(payload), WireFormat.PROTOBUF)


_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "request_id": _JSON,
            "device_id": _JSON,
            "captured_at_ms": _JSON,
            "faces": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "pixels": st.fixed_dictionaries(
                            {},
                            optional={
                                "shape": st.lists(st.integers(-(2**40), 2**40), max_size=4) | _JSON,
                                "dtype": st.integers(-(2**40), 2**40)
                                | st.sampled_from(list(pb.DataType.keys()))
                                | _JSON,
                                "data": st.binary(max_size=64).map(
                                    lambda b: __import__("base64").b64encode(b).decode()
                                )
                                | _JSON,
                            },
                        )
                    },
                ),
                max_size=3,
            )
            | _JSON,
        },
    )
)
def test_json_documents_of_any_shape(document: dict[str, object]) -> None:
    _decode(json.dumps(document).encode(), WireFormat.JSON)


@given(st.binary(max_size=256))
def test_arbitrary_bytes_as_json(payload: bytes) -> None:
    _decode(payload, WireFormat.JSON)


def test_deeply_nested_json_is_a_payload_error() -> None:
    _decode(b'{"faces": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", WireFormat.JSON)


def test_unknown_dtype_number_is_named_in_the_error() -> None:
    message = pb.InferenceRequest(request_id="x")
    message.faces.add(pixels=pb.Tensor(shape=[1, 1, 1], dtype=7, data=b"\0"))  # type: ignore[arg-type]
    for wire, payload in (
        (WireFormat.PROTOBUF, message.SerializeToString()),
        (
            WireFormat.JSON,
            b'{"request_id": "x", "faces": [{"pixels": {"shape": [1, 1, 1], "dtype": 7}}]}',
        ),
    ):
        with pytest.raises(PayloadError, match="dtype 7 not supported") as caught:
            decode_request(payload, wire, topic_device="cam", max_faces=8, max_face_side=512)
        assert caught.value.request_id == "x"
