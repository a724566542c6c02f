"""The runtime against a real mosquitto: round trips, batching, overload, bad input."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest

from edge_runtime import (
    FacePixels,
    Request,
    Status,
    WireFormat,
    decode_service_info,
)
from edgeinfer.v1 import inference_pb2 as pb
from tests.support.devices import device, face
from tests.support.runtime import make_settings, running_runtime
from tests.support.until import until

pytestmark = pytest.mark.integration

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


async def test_protobuf_round_trip_names_model_and_returns_probabilities(
    broker, registry, unique, loop_errors
):
    settings = make_settings(broker.url, registry, unique)
    async with running_runtime(settings), device(broker.url, settings.topic_root, "cam1") as cam:
        await cam.send(Request("r1", "cam1", 1234, (face(1), face(2))))
        (response,) = await cam.receive(1)
    assert response.status is Status.OK, response.error
    assert response.request_id == "r1"
    assert response.device_id == "cam1"
    assert response.captured_at_ms == 1234
    assert response.model is not None
    assert (response.model.name, response.model.version) == ("emotion", "1.0.0")
    assert len(response.results) == 2
    for result in response.results:
        assert len(result.probabilities) == 7
        assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-4)
        assert result.label == FER_LABELS[result.class_index]
        assert result.confidence == pytest.approx(max(result.probabilities))
    assert response.timings.total_us > 0


async def test_json_request_is_answered_in_json(broker, registry, unique, loop_errors):
    settings = make_settings(broker.url, registry, unique)
    async with running_runtime(settings), device(broker.url, settings.topic_root, "cam2") as cam:
        await cam.send(
            Request("j1", "cam2", 0, (face(3),)),
            wire=WireFormat.JSON,
            content_type="application/json",
        )
        (response,) = await cam.receive(1)
    assert response.status is Status.OK
    assert response.request_id == "j1"


async def test_json_payload_is_protobuf_json_mapping(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    pixels = np.full((64, 64), 128, dtype=np.uint8).tobytes()
    import base64

    document = {
        "request_id": "raw-json",
        "faces": [
            {
                "pixels": {
                    "shape": [64, 64, 1],
                    "dtype": "DATA_TYPE_UINT8",
                    "data": base64.b64encode(pixels).decode(),
                }
            }
        ],
    }
    async with running_runtime(settings), device(broker.url, settings.topic_root, "cam3") as cam:
        results: asyncio.Queue[bytes] = asyncio.Queue()
        cam.transport.subscribe(f"{settings.topic_root}/cam3-raw/result")
        await cam.send(
            json.dumps(document).encode(),
            content_type="application/json",
        )
        (response,) = await cam.receive(1)
        del results
    assert response.status is Status.OK
    assert response.request_id == "raw-json"


async def test_response_topic_and_correlation_data_are_honoured(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    reply_topic = f"{settings.topic_root}/cam4/result/app-7"  # below the device's result topic
    async with (
        running_runtime(settings),
        device(broker.url, settings.topic_root, "cam4", (reply_topic,)) as cam,
    ):
        await cam.send(Request("c1", "cam4", 0, (face(4),)))
        await cam.send(
            Request("c2", "cam4", 0, (face(5),)),
            response_topic=reply_topic,
            correlation_data=b"corr-42",
        )
        seen = {}
        async with asyncio.timeout(10):
            while len(seen) < 2:
                topic, response, correlation = await cam.responses.get()
                seen[response.request_id] = (topic, correlation)
    assert seen["c1"] == (f"{settings.topic_root}/cam4/result", None)
    assert seen["c2"] == (reply_topic, b"corr-42")


async def test_service_info_and_online_state_are_retained(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    info_topic = f"{settings.topic_root}/runtime/{settings.runtime_id}/info"
    state_topic = f"{settings.topic_root}/runtime/{settings.runtime_id}/state"
    # A client that connects after the runtime still gets both (retained).
    async with (
        running_runtime(settings),
        device(broker.url, settings.topic_root, "late", (info_topic, state_topic)) as d,
    ):
        got = {}
        async with asyncio.timeout(10):
            while len(got) < 2:
                message = await d.other.get()
                got[message.topic] = message
    info = decode_service_info(got[info_topic].payload)
    assert got[info_topic].retain
    assert got[state_topic].retain
    assert got[state_topic].payload == b"online"
    assert (info.input.height, info.input.width, info.input.channels) == (64, 64, 1)
    assert info.input.normalization == "symmetric"
    assert info.labels == FER_LABELS
    assert info.model.version == "1.0.0"
    assert info.max_batch == settings.batch.max_size
    assert info.request_topic_filter == f"{settings.topic_root}/+/request"
    # After a graceful stop the retained state says offline.
    async with device(broker.url, settings.topic_root, "after", (state_topic,)) as d:
        async with asyncio.timeout(10):
            message = await d.other.get()
    assert message.payload == b"offline"


@pytest.mark.parametrize("on_loop", [True, False], ids=["on-loop", "worker-thread"])
async def test_faces_of_concurrent_devices_share_batches(broker, registry, unique, on_loop):
    settings = make_settings(
        broker.url,
        registry,
        unique,
        **{"batch.max_wait_s": 0.02, "batch.max_size": 16, "batch.on_loop": on_loop},
    )
    async with running_runtime(settings) as runtime:
        async with device(broker.url, settings.topic_root, "fleet") as cam:
            for i in range(40):
                await cam.send(Request(f"b{i}", "fleet", 0, (face(i),)))
            responses = await cam.receive(40)
        stats = runtime.service.stats
    assert all(r.status is Status.OK for r in responses)
    assert max(r.timings.batch_size for r in responses) > 1
    assert stats.faces == 40
    assert stats.batches < 40


async def test_full_queue_answers_resource_exhausted_then_recovers(broker, registry, unique):
    settings = make_settings(
        broker.url,
        registry,
        unique,
        **{"batch.max_queue": 2, "batch.max_size": 1, "limits.max_faces_per_request": 1},
    )
    big = FacePixels(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    async with running_runtime(settings), device(broker.url, settings.topic_root, "flood") as cam:
        sends = [
            cam.transport.publish_nowait(
                cam.request_topic(),
                __import__("edge_runtime").encode_request(Request(f"o{i}", "", 0, (big,))),
            )
            for i in range(150)
        ]
        await asyncio.gather(*sends)
        responses = await cam.receive(150, timeout_s=30)
        statuses = [r.status for r in responses]
        await cam.send(Request("after", "flood", 0, (face(9),)))
        (after,) = await cam.receive(1)
    assert set(statuses) <= {Status.OK, Status.RESOURCE_EXHAUSTED}
    assert Status.RESOURCE_EXHAUSTED in statuses
    assert Status.OK in statuses
    exhausted = [r for r in responses if r.status is Status.RESOURCE_EXHAUSTED]
    assert "queued" in exhausted[0].error
    assert after.status is Status.OK


def _tensor_request(request_id: str, **tensor: object) -> bytes:
    message = pb.InferenceRequest(request_id=request_id)
    message.faces.add(pixels=pb.Tensor(**tensor))
    return message.SerializeToString()


BAD_INPUTS = {
    "undecodable": (b"\xff\x00not-protobuf\xff", "cannot decode"),
    "no faces": (pb.InferenceRequest(request_id="x").SerializeToString(), "no faces"),
    "wrong dtype": (
        _tensor_request("x", shape=[64, 64, 1], dtype=pb.DATA_TYPE_UNSPECIFIED, data=b"\0" * 4096),
        "dtype DATA_TYPE_UNSPECIFIED not supported",
    ),
    "size mismatch": (
        _tensor_request("x", shape=[64, 64, 1], dtype=pb.DATA_TYPE_UINT8, data=b"\0" * 100),
        "100 bytes for shape [64, 64, 1]",
    ),
    "bad shape": (
        _tensor_request("x", shape=[2, 64, 64, 1], dtype=pb.DATA_TYPE_UINT8, data=b"\0" * 8192),
        "is not [H, W] or [H, W, C]",
    ),
    "four channels": (
        _tensor_request("x", shape=[8, 8, 4], dtype=pb.DATA_TYPE_UINT8, data=b"\0" * 256),
        "4 channels",
    ),
    "too large side": (
        _tensor_request("x", shape=[2000, 1, 1], dtype=pb.DATA_TYPE_UINT8, data=b"\0" * 2000),
        "outside 1..512",
    ),
    "nan pixels": (
        _tensor_request(
            "x",
            shape=[2, 2, 1],
            dtype=pb.DATA_TYPE_FLOAT32,
            data=np.array([1, np.nan, 3, 4], "<f4").tobytes(),
        ),
        "NaN or infinity",
    ),
    "inf pixels": (
        _tensor_request(
            "x",
            shape=[2, 2, 1],
            dtype=pb.DATA_TYPE_FLOAT32,
            data=np.array([1, np.inf, 3, 4], "<f4").tobytes(),
        ),
        "NaN or infinity",
    ),
    "too many faces": (
        pb.InferenceRequest(
            faces=[pb.Face(pixels=pb.Tensor(shape=[1, 1, 1], dtype=pb.DATA_TYPE_UINT8, data=b"\0"))]
            * 9
        ).SerializeToString(),
        "9 faces; at most 8",
    ),
    "device mismatch": (
        pb.InferenceRequest(
            device_id="someone-else",
            faces=[pb.Face(pixels=pb.Tensor(shape=[1, 1], dtype=pb.DATA_TYPE_UINT8, data=b"\0"))],
        ).SerializeToString(),
        "does not match topic device",
    ),
    "oversize payload": (b"\0" * 2_000_000, "exceeds 1048576"),
}


async def test_every_bad_input_gets_invalid_argument_and_others_are_served(
    broker, registry, unique, loop_errors
):
    settings = make_settings(broker.url, registry, unique)
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "bad") as bad,
        device(broker.url, settings.topic_root, "good") as good,
    ):
        for payload, _ in BAD_INPUTS.values():
            await bad.send(payload)
            await good.send(Request("g", "good", 0, (face(7),)))
        bad_responses = await bad.receive(len(BAD_INPUTS))
        good_responses = await good.receive(len(BAD_INPUTS))
        metrics = runtime.metrics.registry
        rejected = sum(
            s.value
            for m in metrics.collect()
            if m.name == "edge_invalid_requests"
            for s in m.samples
            if s.name.endswith("_total")
        )
    assert all(r.status is Status.OK for r in good_responses)
    for (name, (_, expected)), response in zip(BAD_INPUTS.items(), bad_responses, strict=True):
        assert response.status is Status.INVALID_ARGUMENT, name
        assert expected in response.error, (name, response.error)
    assert rejected == len(BAD_INPUTS)


async def test_float32_rgb_faces_of_any_size_are_converted(broker, registry, unique):
    settings = make_settings(broker.url, registry, unique)
    rng = np.random.default_rng(5)
    rgb = rng.uniform(0, 255, (120, 90, 3)).astype(np.float32)
    async with running_runtime(settings), device(broker.url, settings.topic_root, "rgb") as cam:
        await cam.send(Request("f", "rgb", 0, (FacePixels(rgb), face(1, size=30))))
        (response,) = await cam.receive(1)
    assert response.status is Status.OK, response.error
    assert len(response.results) == 2


async def test_metrics_and_probes_are_served_over_http(broker, registry, unique):
    from tests.support.broker import free_port

    port = free_port()
    settings = make_settings(broker.url, registry, unique, **{"metrics.port": port})
    async with running_runtime(settings), device(broker.url, settings.topic_root, "m") as cam:
        await cam.send(Request("m1", "m", 0, (face(1),)))
        await cam.receive(1)

        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()

        health = await asyncio.to_thread(get, "/healthz")
        ready = await asyncio.to_thread(get, "/readyz")
        status, text = await asyncio.to_thread(get, "/metrics")
    assert health[0] == 200
    assert ready[0] == 200
    assert status == 200
    assert 'edge_requests_total{frontdoor="mqtt",status="OK"} 1.0' in text
    assert 'edge_model_info{name="emotion",variant="float32",version="1.0.0"} 1.0' in text
    assert "edge_batch_size_faces_bucket" in text
    assert "edge_request_seconds_bucket" in text


async def test_runtime_reconnects_and_resubscribes_after_a_broker_restart(
    registry, unique, tmp_path
):
    from tests.support.broker import free_port, start_broker, stop_broker

    port = free_port()
    own = start_broker(tmp_path, port)
    settings = make_settings(own.url, registry, unique)
    try:
        async with running_runtime(settings) as runtime:
            async with device(own.url, settings.topic_root, "cam") as cam:
                await cam.send(Request("before", "cam", 0, (face(1),)))
                assert (await cam.receive(1))[0].status is Status.OK
            stop_broker(own)
            await until(lambda: not runtime.transport.connected.is_set(), 10)
            own = start_broker(tmp_path, port)  # a fresh broker: no session, no subscriptions
            await runtime.transport.wait_connected(20)
            async with device(own.url, settings.topic_root, "cam") as cam:
                await cam.send(Request("after", "cam", 0, (face(2),)))
                (response,) = await cam.receive(1)
        assert response.status is Status.OK
        assert response.request_id == "after"
    finally:
        stop_broker(own)


async def test_model_path_serves_a_given_file(broker, registry, unique):
    path = registry / "emotion" / "1.0.0" / "model-int8-dynamic.tflite"
    settings = make_settings(broker.url, registry, unique, **{"model.path": str(path)})
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "cam") as cam,
    ):
        await cam.send(Request("p", "cam", 0, (face(3),)))
        (response,) = await cam.receive(1)
        variant = runtime.model.variant
    assert response.status is Status.OK
    assert variant == "int8-dynamic"
