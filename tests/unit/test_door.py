"""The MQTT door above the wire: a whole Runtime on an in-memory broker and a fake model."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from edge_runtime import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    FacePixels,
    Request,
    Runtime,
    Settings,
    Status,
    Topics,
    WireFormat,
    decode_response,
    decode_service_info,
    encode_request,
    load_settings,
)
from edge_runtime.testing import FakeModel, MemoryBroker, label_of

ROOT = "unit/v1"
TOPICS = Topics(ROOT)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "mqtt.broker": "mqtt://broker.invalid:1883",  # never dialled: the broker is in memory
        "runtime_id": "rt-unit",
        "topic_root": ROOT,
        "metrics.port": 0,
        "http.port": 0,
        "twin.enabled": False,
        "batch.max_wait_s": 0.001,
    }
    values.update(overrides)
    return load_settings({}, None, values)


@contextlib.asynccontextmanager
async def serving(
    broker: MemoryBroker, model: FakeModel | None = None, **overrides: object
) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings(**overrides), model=model or FakeModel(), transport=broker.open)
    ready = asyncio.Event()
    task = asyncio.create_task(runtime.run(on_ready=ready.set))
    try:
        async with asyncio.timeout(5):
            await ready.wait()
        yield runtime
    finally:
        runtime.stop()
        async with asyncio.timeout(5):
            await task


def request(request_id: str, *grays: int, device: str = "cam-1") -> Request:
    return Request(
        request_id=request_id,
        device_id=device,
        captured_at_ms=1,
        faces=tuple(FacePixels(np.full((8, 8, 1), g, np.uint8)) for g in grays),
    )


def sample(runtime: Runtime, name: str, **labels: str) -> float:
    return runtime.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_each_face_is_answered_on_the_result_topic_before_its_request_is_acked() -> None:
    broker = MemoryBroker()
    async with serving(broker):
        mid = broker.publish(
            TOPICS.request("cam-1"),
            encode_request(request("r1", 1, 2), WireFormat.PROTOBUF),
            content_type=CONTENT_TYPE_PROTOBUF,
        )
        [answer] = await broker.answers(1)
        await broker.until(lambda: mid in broker.acked)
    response = decode_response(answer.payload, WireFormat.PROTOBUF)
    assert answer.topic == TOPICS.result("cam-1")
    assert response.status is Status.OK
    assert response.request_id == "r1"
    assert [r.label for r in response.results] == [label_of(1), label_of(2)]
    assert broker.events.index(("sent", answer.topic)) < broker.events.index(("ack", mid))


async def test_the_service_info_and_online_state_are_retained_at_connect() -> None:
    broker = MemoryBroker()
    async with serving(broker):
        info = decode_service_info(broker.retained[TOPICS.info("rt-unit")])
        assert broker.retained[TOPICS.state("rt-unit")] == b"online"
    assert info.model.name == "fake"
    assert info.request_topic_filter == f"{ROOT}/+/request"
    assert broker.retained[TOPICS.state("rt-unit")] == b"offline"  # a graceful stop says so


async def test_json_with_parameters_is_answered_in_json_with_the_correlation_echoed() -> None:
    broker = MemoryBroker()
    async with serving(broker):
        broker.publish(
            TOPICS.request("cam-1"),
            encode_request(request("r1", 3), WireFormat.JSON),
            content_type=f"{CONTENT_TYPE_JSON}; charset=utf-8",
            response_topic=f"{ROOT}/cam-1/result/mine",
            correlation_data=b"corr",
        )
        [answer] = await broker.answers(1)
    assert answer.topic == f"{ROOT}/cam-1/result/mine"
    assert answer.content_type == CONTENT_TYPE_JSON
    assert answer.correlation_data == b"corr"
    assert decode_response(answer.payload, WireFormat.JSON).status is Status.OK


async def test_a_response_topic_outside_the_devices_own_is_ignored_and_counted() -> None:
    broker = MemoryBroker()
    async with serving(broker) as runtime:
        broker.publish(
            TOPICS.request("cam-1"),
            encode_request(request("r1", 3), WireFormat.PROTOBUF),
            response_topic=f"{ROOT}/cam-2/result",
        )
        [answer] = await broker.answers(1)
        ignored = sum(
            m.value
            for metric in runtime.metrics.registry.collect()
            if metric.name == "edge_response_topics_ignored"
            for m in metric.samples
            if m.name.endswith("_total")
        )
    assert answer.topic == TOPICS.result("cam-1")
    assert ignored == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"\xff\x00 not protobuf", "decode"), (b"x" * 2000, "payload_too_large")],
)
async def test_bad_input_gets_a_typed_error_a_metric_and_an_ack(
    payload: bytes, reason: str
) -> None:
    broker = MemoryBroker()
    async with serving(broker, **{"limits.max_payload_bytes": 1000}) as runtime:
        mid = broker.publish(TOPICS.request("cam-1"), payload)
        [answer] = await broker.answers(1)
        await broker.until(lambda: mid in broker.acked)
        rejected = sample(runtime, "edge_invalid_requests_total", frontdoor="mqtt", reason=reason)
    assert decode_response(answer.payload, WireFormat.PROTOBUF).status is Status.INVALID_ARGUMENT
    assert rejected == 1


async def test_a_message_on_an_unexpected_topic_is_acked_and_counted() -> None:
    broker = MemoryBroker()
    async with serving(broker) as runtime:
        mid = broker.publish(f"{ROOT}/cam-1/other", b"")
        await broker.until(lambda: mid in broker.acked)
        rejected = sample(
            runtime, "edge_invalid_requests_total", frontdoor="mqtt", reason="bad_topic"
        )
    assert rejected == 1
    assert broker.answered() == []


async def test_a_retry_of_an_answered_request_is_answered_again_without_the_model() -> None:
    broker, model = MemoryBroker(), FakeModel()
    async with serving(broker, model) as runtime:
        payload = encode_request(request("r1", 4), WireFormat.PROTOBUF)
        broker.publish(TOPICS.request("cam-1"), payload)
        await broker.answers(1)
        broker.publish(TOPICS.request("cam-1"), payload)
        first, again = await broker.answers(2)
        duplicates = sample(runtime, "edge_duplicate_requests_total", outcome="answered")
    assert decode_response(first.payload, WireFormat.PROTOBUF) == decode_response(
        again.payload, WireFormat.PROTOBUF
    )
    assert model.batches == [1]
    assert duplicates == 1


async def test_a_full_queue_answers_resource_exhausted_and_the_rest_are_served() -> None:
    broker = MemoryBroker()
    async with serving(
        broker, **{"batch.max_queue": 1, "batch.max_size": 1, "limits.max_faces_per_request": 1}
    ):
        for i in range(3):  # published in one turn: the batcher has not taken the first yet
            broker.publish(
                TOPICS.request("cam-1"), encode_request(request(f"r{i}", i), WireFormat.PROTOBUF)
            )
        answers = await broker.answers(3)
    statuses = sorted(decode_response(a.payload, WireFormat.PROTOBUF).status for a in answers)
    assert Status.RESOURCE_EXHAUSTED in statuses
    assert Status.OK in statuses


async def test_a_failing_model_answers_internal_and_keeps_serving() -> None:
    broker = MemoryBroker()
    async with serving(broker, FakeModel(fail_next=1)):
        for i in range(2):
            broker.publish(
                TOPICS.request("cam-1"), encode_request(request(f"r{i}", i), WireFormat.PROTOBUF)
            )
            await broker.answers(i + 1)
        answers = broker.answered()
    statuses = [decode_response(a.payload, WireFormat.PROTOBUF).status for a in answers]
    assert statuses == [Status.INTERNAL, Status.OK]


async def test_a_swap_is_answered_by_the_new_version_and_advertised() -> None:
    broker, new = MemoryBroker(), FakeModel("2.0.0")
    async with serving(broker) as runtime:
        runtime.service.swap(new)
        broker.publish(
            TOPICS.request("cam-1"), encode_request(request("r1", 1), WireFormat.PROTOBUF)
        )
        [answer] = await broker.answers(1)
        info = decode_service_info(broker.retained[TOPICS.info("rt-unit")])
    model = decode_response(answer.payload, WireFormat.PROTOBUF).model
    assert model is not None
    assert model.version == "2.0.0"
    assert info.model.version == "2.0.0"


async def test_a_graceful_stop_answers_everything_queued() -> None:
    broker = MemoryBroker()
    async with serving(broker, **{"batch.max_wait_s": 0.2, "batch.max_size": 64}):
        mids = [
            broker.publish(
                TOPICS.request("cam-1"), encode_request(request(f"r{i}", i), WireFormat.PROTOBUF)
            )
            for i in range(10)
        ]
        await broker.until(lambda: broker.taken)  # all with the batcher, none answered yet
        assert broker.answered() == []
    assert len(broker.answered()) == 10
    assert broker.acked == mids
