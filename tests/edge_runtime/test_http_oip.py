"""The Open Inference Protocol (KServe V2) on the runtime, called by Triton's own client."""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest

from tests.support.http import astronaut_face_rgb, http_runtime

pytestmark = pytest.mark.integration


def _triton(base: str):  # type: ignore[no-untyped-def]
    import tritonclient.http as triton

    return triton, triton.InferenceServerClient(base.removeprefix("http://"))


async def test_tritons_client_reads_health_and_metadata_and_infers(broker, registry, unique):
    """tritonclient[http] sees a live, ready server and model, its metadata, and gets
    probabilities and labels for UINT8 and FP32 faces, in binary (its default) and JSON."""
    rgb = astronaut_face_rgb()
    gray = cv2.cvtColor(astronaut_face_rgb(64), cv2.COLOR_RGB2GRAY)
    gray64 = np.asarray(gray, np.uint8)[np.newaxis, ..., np.newaxis]
    async with http_runtime(broker.url, registry, unique) as http:

        def client_calls() -> dict[str, object]:
            triton, client = _triton(http.base)
            uint8 = triton.InferInput("face", list(gray64.shape), "UINT8")
            uint8.set_data_from_numpy(gray64)  # binary tensor data: the client's default
            fp32 = triton.InferInput("face", [2, 48, 48, 3], "FP32")
            fp32.set_data_from_numpy(
                np.stack([rgb, rgb]).astype(np.float32) / 255.0, binary_data=False
            )
            json_outputs = [
                triton.InferRequestedOutput("probabilities", binary_data=False),
                triton.InferRequestedOutput("label", binary_data=False),
            ]
            try:
                return {
                    "live": client.is_server_live(),
                    "ready": client.is_server_ready(),
                    "model_ready": client.is_model_ready("emotion"),
                    "version_ready": client.is_model_ready("emotion", "1.0.0"),
                    "other_version_ready": client.is_model_ready("emotion", "9.9.9"),
                    "metadata": client.get_model_metadata("emotion"),
                    "binary": client.infer("emotion", [uint8], request_id="r-1"),
                    "json": client.infer("emotion", [fp32], outputs=json_outputs),
                }
            finally:
                client.close()

        calls = await asyncio.to_thread(client_calls)
    assert calls["live"]
    assert calls["ready"]
    assert calls["model_ready"]
    assert calls["version_ready"]
    assert not calls["other_version_ready"]
    metadata = calls["metadata"]
    assert metadata["name"] == "emotion"
    assert metadata["versions"] == ["1.0.0"]
    assert metadata["inputs"] == [{"name": "face", "datatype": "UINT8", "shape": [-1, 64, 64, 1]}]
    assert [o["name"] for o in metadata["outputs"]] == ["probabilities", "label"]
    binary = calls["binary"]
    assert binary.get_response()["id"] == "r-1"
    assert binary.get_response()["model_version"] == "1.0.0"
    probabilities = binary.as_numpy("probabilities")
    assert probabilities.shape == (1, 7)
    assert probabilities.dtype == np.float32
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    assert binary.as_numpy("label").tolist() == [b"happy"]
    answer = calls["json"]
    assert answer.as_numpy("probabilities").shape == (2, 7)
    assert answer.as_numpy("label").tolist() == ["happy", "happy"]  # JSON: str, binary: bytes


async def test_v2_errors_are_json_with_the_right_codes(broker, registry, unique):
    """Unknown models and versions 404; bad tensors 400 with a message; routes are exact."""
    good = {
        "inputs": [{"name": "face", "shape": [1, 2, 2], "datatype": "UINT8", "data": [0, 1, 2, 3]}]
    }

    def inputs(**change: object) -> str:
        return json.dumps({"inputs": [{**good["inputs"][0], **change}]})

    cases = [
        ("GET", "/v2/models/nope", None, 404, "unknown model"),
        ("GET", "/v2/models/emotion/versions/9.9.9", None, 404, "version 9.9.9"),
        ("POST", "/v2/models/nope/infer", json.dumps(good), 404, "unknown model"),
        ("POST", "/v2/models/emotion/infer", "{", 400, "failed to parse"),
        ("POST", "/v2/models/emotion/infer", "{}", 400, "one tensor"),
        (
            "POST",
            "/v2/models/emotion/infer",
            inputs(name="x"),
            400,
            "unexpected inference input 'x'",
        ),
        (
            "POST",
            "/v2/models/emotion/infer",
            inputs(datatype="INT64"),
            400,
            "expected UINT8 or FP32",
        ),
        ("POST", "/v2/models/emotion/infer", inputs(shape=[1, 3, 3]), 400, "4 values for shape"),
        ("POST", "/v2/models/emotion/infer", inputs(data=[0, 1, 2, 300]), 400, "0..255"),
        ("POST", "/v2/models/emotion/infer", inputs(data=["a", 1, 2, 3]), 400, "must be numbers"),
        (
            "POST",
            "/v2/models/emotion/infer",
            inputs(shape=[1, 2, 2, 2], data=[0] * 8),
            400,
            "1 or 3 channels",
        ),
        (
            "POST",
            "/v2/models/emotion/infer",
            inputs(datatype="FP32", data=[0, 0.5, 1, 2]),
            400,
            "within [0, 1]",
        ),
        (
            "POST",
            "/v2/models/emotion/infer",
            json.dumps({**good, "outputs": [{"name": "logits"}]}),
            400,
            "unexpected inference output 'logits'",
        ),
        ("GET", "/v2/models/emotion/infer", None, 405, "Method Not Allowed"),
        ("GET", "/v3/anything", None, 404, "Not Found"),
    ]
    wrong = []
    async with http_runtime(broker.url, registry, unique) as http:
        for method, path, body, code, message in cases:
            status, answer, _ = await http.call(method, path, body)
            if (
                status != code
                or not isinstance(answer, dict)
                or message not in answer.get("error", "")
            ):
                wrong.append((method, path, (body or "")[:80], status, answer))
        status, answer, _ = await http.call(
            "POST", "/v2/models/emotion/versions/1.0.0/infer", json.dumps(good)
        )
    assert not wrong, "\n".join(map(str, wrong))
    assert status == 200
    assert answer["model_version"] == "1.0.0"
    assert [o["name"] for o in answer["outputs"]] == ["probabilities", "label"]
