"""Poison messages: no request, payload or MQTT property can stop the runtime or disconnect it.

Each bad request is answered where possible and acknowledged either way, so the broker never
redelivers it into a crash loop, and a well-behaved device keeps being served meanwhile.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from edge_runtime import Request, Status
from edgeinfer.v1 import inference_pb2 as pb
from tests.support.broker import free_port, start_broker, stop_broker
from tests.support.devices import device, face
from tests.support.runtime import make_settings, running_runtime
from tests.support.until import until

pytestmark = pytest.mark.integration


def _counter(runtime, name: str, **labels: str) -> float:
    value = runtime.metrics.registry.get_sample_value(f"{name}_total", labels or None)
    return value or 0.0


async def _all_acknowledged(runtime) -> None:
    """Every request taken from the broker is acknowledged (answers are acked a moment later)."""
    await until(lambda: not runtime.transport.unacked, 10, what="every request acknowledged")


async def _good_answer(good, request_id: str) -> None:
    await good.send(Request(request_id, "good", 0, (face(1),)))
    (response,) = await good.receive(1)
    assert response.status is Status.OK, response.error
    assert response.request_id == request_id


async def test_unknown_dtype_is_answered_and_the_runtime_keeps_serving(
    broker, registry, unique, loop_errors
):
    settings = make_settings(broker.url, registry, unique)
    flipped = pb.InferenceRequest(request_id="bad-pb")
    flipped.faces.add(pixels=pb.Tensor(shape=[64, 64, 1], dtype=7, data=b"\0" * 4096))
    as_json = json.dumps(
        {"request_id": "bad-json", "faces": [{"pixels": {"shape": [1, 1, 1], "dtype": 7}}]}
    ).encode()
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "bad") as bad,
        device(broker.url, settings.topic_root, "good") as good,
    ):
        connections = runtime.transport.connections
        await bad.send(flipped.SerializeToString())
        await bad.send(as_json, content_type="application/json")
        answers = {r.request_id: r for r in await bad.receive(2)}
        await _good_answer(good, "after")
        assert runtime.transport.connections == connections
        await _all_acknowledged(runtime)
    for request_id in ("bad-pb", "bad-json"):
        assert answers[request_id].status is Status.INVALID_ARGUMENT
        assert "dtype 7 not supported" in answers[request_id].error


async def test_response_topics_outside_the_devices_own_are_not_honoured(
    broker, registry, unique, loop_errors
):
    """A Response Topic with wildcards, in $SYS or another device's topics is answered on the
    requesting device's own result topic; the victim device hears nothing."""
    settings = make_settings(broker.url, registry, unique)
    root = settings.topic_root
    cases = {
        "wildcard": f"{root}/attacker/+/reply",
        "hash": f"{root}/attacker/result/#",
        "sys": "$SYS/broker/fake",
        "victim": f"{root}/victim/result",
        "victim-below": f"{root}/victim/result/x",
        "elsewhere": f"other-{unique}/anything",
        "request-topic": f"{root}/attacker/request",
    }
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "attacker") as attacker,
        device(broker.url, root, "victim", (f"{root}/victim/result/+",)) as victim,
    ):
        connections = runtime.transport.connections
        for name, topic in cases.items():
            await attacker.send(
                Request(name, "attacker", 0, (face(2),)),
                response_topic=topic,
                correlation_data=name.encode(),
            )
        answers = {}
        async with asyncio.timeout(10):
            while len(answers) < len(cases):
                topic, response, correlation = await attacker.responses.get()
                answers[response.request_id] = (topic, correlation, response.status)
        await _good_answer_from(victim, "victim-own")
        ignored = {
            reason: _counter(runtime, "edge_response_topics_ignored", reason=reason)
            for reason in ("invalid", "outside_filter")
        }
        assert runtime.transport.connections == connections
        assert victim.responses.empty()
        assert victim.other.empty()
    for name in cases:
        assert answers[name] == (f"{root}/attacker/result", name.encode(), Status.OK), name
    assert ignored == {"invalid": 3, "outside_filter": 4}


async def _good_answer_from(dev, request_id: str) -> None:
    await dev.send(Request(request_id, dev.name, 0, (face(3),)))
    (response,) = await dev.receive(1)
    assert response.request_id == request_id


async def test_a_response_the_broker_refuses_is_counted_and_acknowledged(
    registry, unique, tmp_path, loop_errors
):
    """The operator's filter allows a topic the ACL denies: the broker refuses the answer
    (PUBACK 'Not authorized'); the request is acknowledged, the connection stays up."""
    port = free_port()
    root = f"test-{unique}/v1"
    (tmp_path / "acl").write_text(
        f"topic readwrite {root}/+/request\n"
        f"topic readwrite {root}/+/result\n"
        f"topic readwrite {root}/runtime/#\n"
    )
    conf = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
        f"persistence false\nacl_file {tmp_path / 'acl'}\nuser root\n"
    )
    own = start_broker(tmp_path, port, conf)
    settings = make_settings(
        own.url, registry, unique, **{"mqtt.response_topic_filter": "{root}/{device}/#"}
    )
    try:
        async with (
            running_runtime(settings) as runtime,
            device(own.url, root, "cam") as cam,
            device(own.url, root, "good") as good,
        ):
            connections = runtime.transport.connections
            for i in range(10):
                await cam.send(
                    Request(f"denied-{i}", "cam", 0, (face(i),)),
                    response_topic=f"{root}/cam/denied",
                )
            await until(lambda: _counter(runtime, "edge_publish_failures") >= 10, 10)
            await _good_answer(good, "still-served")
            assert runtime.transport.connections == connections
            await _all_acknowledged(runtime)
    finally:
        stop_broker(own)


async def test_an_unexpected_error_handling_a_message_is_contained(
    broker, registry, unique, loop_errors, monkeypatch
):
    """Whatever a message triggers, the runtime logs it, counts it, acknowledges the message
    and goes on: the safety net under every specific check."""
    from edge_runtime import codec

    real = codec.decode_request

    def explode(payload, *args, **kwargs):
        if payload == b"boom":
            raise RuntimeError("unforeseen")
        return real(payload, *args, **kwargs)

    monkeypatch.setattr(codec, "decode_request", explode)
    settings = make_settings(broker.url, registry, unique)
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "good") as good,
        device(broker.url, settings.topic_root, "bad") as bad,
    ):
        for _ in range(3):
            await bad.send(b"boom")
        await _good_answer(good, "after-boom")
        assert _counter(runtime, "edge_invalid_requests", frontdoor="mqtt", reason="internal") == 3
        await _all_acknowledged(runtime)


async def test_odd_content_type_and_correlation_data_are_served(broker, registry, unique):
    """Odd content types and correlation data of any bytes do not disturb the runtime."""
    settings = make_settings(broker.url, registry, unique)
    async with (
        running_runtime(settings),
        device(broker.url, settings.topic_root, "odd") as odd,
    ):
        await odd.send(
            Request("odd-1", "odd", 0, (face(4),)),
            content_type="application/x-protobuf; charset=\u00ff\u2603",
            correlation_data=bytes(range(256)),
        )
        (response,) = await odd.receive(1)
    assert response.status is Status.OK


async def test_a_flood_of_random_payloads_and_properties_beside_a_good_device(
    broker, registry, unique, loop_errors
):
    """Hypothesis-made payloads (bit-flipped requests, JSON, bytes) with random content types,
    response topics and correlation data, published over MQTT while a good device keeps
    asking: every bad one is answered or counted, the good device gets every answer, and the
    runtime never loses its connection."""
    import random

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from edge_runtime import encode_request

    valid = encode_request(Request("v", "fuzz", 0, (face(1),)))
    payloads = st.one_of(
        st.binary(max_size=300),
        st.lists(st.integers(0, len(valid) * 8 - 1), max_size=6).map(
            lambda bits: _flipped(valid, bits)
        ),
        st.text(max_size=200).map(str.encode),
    )
    cases = st.tuples(
        payloads,
        st.sampled_from(["", "application/json", "application/x-protobuf", "x/\u2603"]),
        st.text(alphabet="ab/+#$", max_size=12),
        st.one_of(st.none(), st.binary(max_size=16)),
    )
    runtime_settings = make_settings(broker.url, registry, unique)
    async with (
        running_runtime(runtime_settings) as runtime,
        device(broker.url, runtime_settings.topic_root, "fuzz") as bad,
        device(broker.url, runtime_settings.topic_root, "good") as good,
    ):
        connections = runtime.transport.connections
        sent: list[tuple[bytes, str, str, bytes | None]] = []

        @settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
        @given(cases)
        def collect(case: tuple[bytes, str, str, bytes | None]) -> None:
            sent.append(case)

        collect()
        rng = random.Random(7)  # noqa: S311 - test data
        good_answers = 0
        for number, (payload, content_type, response_topic, correlation) in enumerate(sent):
            await bad.transport.publish(
                bad.request_topic(),
                payload,
                content_type=content_type,
                response_topic=response_topic.strip("/") if "/" in response_topic else "",
                correlation_data=correlation,
            )
            if rng.random() < 0.2:
                await _good_answer(good, f"g{number}")
                good_answers += 1
        await _good_answer(good, "last")
        await _all_acknowledged(runtime)
        assert runtime.transport.connections == connections
    assert good_answers > 20


def _flipped(payload: bytes, bits: list[int]) -> bytes:
    flipped = bytearray(payload)
    for bit in bits:
        flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)
