"""Codec: protobuf and JSON round trips, and precise errors."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.codec import decode_request, decode_response, encode_request, encode_response
from edge_runtime.errors import PayloadError
from edge_runtime.messages import (
    FacePixels,
    FaceResult,
    ModelRef,
    Request,
    Response,
    Status,
    Timings,
    WireFormat,
)
from edgeinfer.topics import Topics


@pytest.mark.parametrize("wire", list(WireFormat))
def test_request_round_trip(wire):
    gray = np.arange(64 * 64, dtype=np.uint32).astype(np.uint8).reshape(64, 64, 1)
    rgb = np.random.default_rng(0).uniform(0, 255, (10, 12, 3)).astype(np.float32)
    request = Request("id", "cam", 42, (FacePixels(gray), FacePixels(rgb)))
    decoded = decode_request(
        encode_request(request, wire), wire, topic_device="cam", max_faces=8, max_face_side=512
    )
    assert (decoded.request_id, decoded.device_id, decoded.captured_at_ms) == ("id", "cam", 42)
    np.testing.assert_array_equal(decoded.faces[0].pixels, gray)
    np.testing.assert_array_equal(decoded.faces[1].pixels, rgb)
    assert not decoded.share_for_training  # no consent unless the device gives it
    consenting = Request("id", "cam", 42, (FacePixels(gray),), share_for_training=True)
    decoded = decode_request(
        encode_request(consenting, wire), wire, topic_device="cam", max_faces=8, max_face_side=512
    )
    assert decoded.share_for_training


@pytest.mark.parametrize("wire", list(WireFormat))
def test_response_round_trip(wire):
    response = Response(
        "id",
        "cam",
        Status.OK,
        "",
        ModelRef("emotion", "2.0.0"),
        (FaceResult("happy", 3, 0.5, (0.5, 0.5)),),
        Timings(1, 2, 3, 4),
        9,
    )
    assert decode_response(encode_response(response, wire), wire) == response


def test_float32_out_of_range_is_rejected():
    request = Request("id", "", 0, (FacePixels(np.full((2, 2, 1), 300.0, np.float32)),))
    with pytest.raises(PayloadError, match=r"outside 0\.\.255"):
        decode_request(
            encode_request(request),
            WireFormat.PROTOBUF,
            topic_device="c",
            max_faces=8,
            max_face_side=512,
        )


def test_json_garbage_is_a_decode_error():
    with pytest.raises(PayloadError, match="cannot decode") as caught:
        decode_request(
            b"{not json", WireFormat.JSON, topic_device="c", max_faces=8, max_face_side=8
        )
    assert caught.value.reason == "decode"


def test_topics_parse_and_reject_wildcards():
    topics = Topics("emotion/v1")
    assert topics.device_of_request("emotion/v1/cam-1/request") == "cam-1"
    assert topics.device_of_request("emotion/v1/runtime/request") is None
    assert topics.device_of_request("other/v1/cam/request") is None
    assert topics.device_of_request("emotion/v1/a/b/request") is None
    with pytest.raises(ValueError, match="invalid topic segment"):
        topics.result("cam/+")


def test_invalid_request_error_carries_its_request_id():
    from edgeinfer.v1 import inference_pb2

    message = inference_pb2.InferenceRequest(request_id="r-42", device_id="cam")
    message.faces.add().pixels.CopyFrom(
        inference_pb2.Tensor(shape=[64, 64, 1], dtype=inference_pb2.DATA_TYPE_UINT8, data=b"x" * 10)
    )
    with pytest.raises(PayloadError) as caught:
        decode_request(
            message.SerializeToString(),
            WireFormat.PROTOBUF,
            topic_device="cam",
            max_faces=4,
            max_face_side=512,
        )
    assert caught.value.request_id == "r-42"
    with pytest.raises(PayloadError) as unparsable:
        decode_request(
            b"\xff\xff", WireFormat.PROTOBUF, topic_device="cam", max_faces=4, max_face_side=512
        )
    assert unparsable.value.request_id == ""


def test_response_topic_is_honoured_only_inside_the_devices_filter():
    topics = Topics("emotion/v1")
    own = "emotion/v1/cam/result"
    assert topics.response("cam", "") == (own, "")
    assert topics.response("cam", own) == (own, "")
    assert topics.response("cam", "emotion/v1/cam/result/app-1") == (
        "emotion/v1/cam/result/app-1",
        "",
    )
    assert topics.response("cam", "emotion/v1/other/result") == (own, "outside_filter")
    assert topics.response("cam", "emotion/v1/cam/request") == (own, "outside_filter")
    assert topics.response("cam", "emotion/v1/cam/+") == (own, "invalid")
    assert topics.response("cam", "$SYS/x") == (own, "invalid")
    assert topics.response("cam", "a" * 70_000) == (own, "invalid")
    assert Topics("r", "").response("cam", "r/cam/result/x") == ("r/cam/result", "disabled")
    wide = Topics("r", "apps/{device}/+")
    assert wide.response("cam", "apps/cam/inbox") == ("apps/cam/inbox", "")
    assert wide.response("cam", "apps/cam2/inbox") == ("r/cam/result", "outside_filter")
