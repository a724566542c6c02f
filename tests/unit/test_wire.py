"""The hot path's MQTT bytes against paho's own codec: each reads what the other writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_runtime import wire


@given(
    topic=st.text(alphabet="abc/-_0123456789", min_size=1, max_size=80).filter(
        lambda t: "+" not in t and "#" not in t
    ),
    payload=st.binary(max_size=20_000),
    mid=st.integers(1, 65535),
    content_type=st.sampled_from(["", "application/x-protobuf", "application/json"]),
    correlation=st.none() | st.binary(max_size=64),
)
def test_a_publish_paho_reads_the_same_and_the_frame_is_found(
    topic: str, payload: bytes, mid: int, content_type: str, correlation: bytes | None
) -> None:
    packet = wire.publish(topic, payload, mid, content_type, correlation)
    body, end = wire.frame(packet, 0)
    assert end == len(packet)
    assert packet[0] == 0x32
    # paho's layout: topic, packet identifier, properties, payload
    view = packet[body:]
    length = int.from_bytes(view[:2], "big")
    assert view[2 : 2 + length].decode() == topic
    assert int.from_bytes(view[2 + length : 4 + length], "big") == mid
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    _, used = properties.unpack(view[4 + length :])  # type: ignore[no-untyped-call]
    assert getattr(properties, "ContentType", "") == content_type
    assert getattr(properties, "CorrelationData", None) == correlation
    assert view[4 + length + used :] == payload
    read = wire.read_publish(memoryview(packet))
    assert read is not None
    assert (read.topic, read.payload, read.packet_id) == (topic, payload, mid)
    assert (read.content_type or "") == content_type
    assert read.correlation_data == correlation


@given(st.binary(max_size=300), st.integers(0, 20))
def test_frame_never_reads_past_the_buffer(data: bytes, start: int) -> None:
    try:
        body, end = wire.frame(data, min(start, len(data)))
    except wire.Malformed:
        return
    assert end == 0 or body <= end <= len(data)


def test_a_split_packet_is_not_framed_until_whole() -> None:
    packet = wire.publish("a/b", b"x" * 300, 7, "", None)
    for cut in range(len(packet)):
        assert wire.frame(packet[:cut], 0) == (0, 0)
    assert wire.frame(packet + packet, len(packet))[1] == 2 * len(packet)


def test_a_five_byte_remaining_length_is_malformed() -> None:
    with pytest.raises(wire.Malformed):
        wire.frame(b"\x30\xff\xff\xff\xff\x01", 0)


@pytest.mark.parametrize("topic", ["", "a/+/b", "a/#"])
def test_topics_no_broker_accepts_are_refused(topic: str) -> None:
    with pytest.raises(ValueError, match="cannot publish"):
        wire.publish(topic, b"", 1, "", None)


def test_puback_and_redelivery() -> None:
    assert wire.puback(0x1234) == b"\x40\x02\x12\x34"
    assert wire.puback_of(memoryview(b"\x12\x34")) == (0x1234, 0)
    assert wire.puback_of(memoryview(b"\x12\x34\x87")) == (0x1234, 0x87)
    packet = wire.publish("a/b", b"x", 1, "", None)
    assert wire.redelivery(packet)[0] == packet[0] | 0x08
    assert wire.redelivery(packet)[1:] == packet[1:]
