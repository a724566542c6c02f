"""TF Serving's REST API on the runtime: the reference app's request, TF Serving's own errors."""

from __future__ import annotations

import asyncio
import base64
import json

import cv2
import numpy as np
import pytest

from edge_runtime import FacePixels, Request, Status
from tests.support.devices import device
from tests.support.http import APP_PATH, app_body, astronaut_face_rgb, http_runtime

pytestmark = pytest.mark.integration

FER2013 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


async def test_the_reference_apps_request_is_answered_like_the_mqtt_path(broker, registry, unique):
    """The app's exact request (a real photo, 48x48 RGB floats) gets 200 and seven
    probabilities in FER2013 order, and the same class as a device sending that face by MQTT."""
    rgb = astronaut_face_rgb()
    body = app_body(rgb)
    assert body.startswith(b'{"signature_name":"serving_default","instances":[[[[0.')
    async with (
        http_runtime(broker.url, registry, unique) as http,
        device(broker.url, http.settings.topic_root, "cam") as cam,
    ):
        status, answer, headers = await http.call(
            "POST", APP_PATH, body, **{"Content-Type": "application/json"}
        )
        await cam.send(Request("same-face", "cam", 0, (FacePixels(rgb),)))
        (mqtt_answer,) = await cam.receive(1)
    assert status == 200, answer
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Edge-Model-Version"] == "1.0.0"
    assert isinstance(answer, dict)
    assert list(answer) == ["predictions"]
    (probabilities,) = answer["predictions"]
    assert len(probabilities) == 7
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert http.runtime.model.labels == tuple(FER2013)
    assert mqtt_answer.status is Status.OK
    (face,) = mqtt_answer.results
    assert FER2013[int(np.argmax(probabilities))] == face.label == "happy"
    # Not equal: the device's uint8 face is made gray in whole intensities, the app's floats not.
    assert probabilities == pytest.approx(list(face.probabilities), abs=2e-3)


# TF Serving's own cases (http_rest_api_handler_test.cc), with its status codes and messages.
MALFORMED = [
    ("GET", "/v1/foo", "", 400, "Malformed request: GET /v1/foo"),
    ("POST", "/v1/foo", "", 400, "Malformed request"),
    ("GET", "/v1/models", "", 400, "Missing model name in request."),
    ("GET", "/v1/models/debug/model_name", "", 400, "Malformed request"),
    ("POST", "/v1/models", "", 400, "Malformed request"),
    ("GET", "/v1/models/foo:predict", "", 400, "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "", 400, "Malformed request"),
    (
        "POST",
        "/v1/models/foo/versions/18446744073709551615:regress",
        "",
        400,
        "Failed to convert version",
    ),
    ("POST", "/v1/models/foo/metadata", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/50/labels/l:regress", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/some_label:regress", "", 400, "Malformed request"),
    ("DELETE", "/v1/models/model_emotion", "", 400, "Malformed request: DELETE"),
    ("POST", "/v1/models/model_emotion:PREDICT", "{}", 400, "Malformed request"),
]
PREDICT_ERRORS = [
    (
        "/v1/models/foo:predict",
        '{"instances": [1]}',
        404,
        "Servable not found for request: Latest(foo)",
    ),
    (
        "/v1/models/foo/versions/50:predict",
        '{"instances": [1]}',
        404,
        "Servable not found for request: Specific(foo, 50)",
    ),
    (
        "/v1/models/model_emotion/versions/99:predict",
        '{"instances": [1]}',
        404,
        "Servable not found for request: Specific(model_emotion, 99)",
    ),
    ("/v1/models/model_emotion:predict", "", 400, "JSON Parse error: The document is empty"),
    (
        "/v1/models/model_emotion:predict",
        "instances = [1, 2]",
        400,
        "JSON Parse error: Invalid value",
    ),
    ("/v1/models/model_emotion:predict", "[1]", 400, "Is not object"),
    (
        "/v1/models/model_emotion:predict",
        '{ "instances": ["x", "y"] }',
        400,
        'JSON Value: "x" Type: String is not of expected type: float',
    ),
    (
        "/v1/models/model_emotion/labels/nonexistent:predict",
        '{ "instances": ["x", "y"] }',
        400,
        "Unrecognized servable version label: nonexistent",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{ "signature_name": 100 }',
        400,
        "'signature_name' key must be a string value.",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"signature_name": "nope", "instances": [[[0.5]]]}',
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [[[0.5]]], "inputs": [[[0.5]]]}',
        400,
        "expecting only one of 'inputs' or 'instances' keys to exist",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"signature_name": ""}',
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": 3}',
        400,
        "Expecting 'instances' to be an list/array",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": []}',
        400,
        "No values in 'instances' array",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [[[0.5, 0.5], [0.5]]]}',
        400,
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [[[0.5, 0.5]], [[0.5]]]}',
        400,
        "Expecting tensor size: 2 but got: 1",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [[[0.5, 0.5]], [[0.5], [0.5]]]}',
        400,
        "Expecting shape [1,2] but got: [2,1]",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [true]}',
        400,
        "Type: True is not of expected type: float",
    ),
    ("/v1/models/model_emotion:predict", '{"instances": [1]}', 400, "each face must be"),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [[[200.0]]]}',
        400,
        "must be within [0, 1]",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [{"img": [[0.5]]}]}',
        400,
        "keys must be equal to: image",
    ),
    (
        "/v1/models/model_emotion:predict",
        '{"instances": [{"b64": "bm90IGFuIGltYWdl"}]}',
        400,
        "not a JPEG or PNG image",
    ),
    ("/v1/models/model_emotion:classify", '{"examples": []}', 400, "Expected classify signature"),
]


async def test_tf_servings_error_cases_get_its_codes_and_messages(broker, registry, unique):
    """Every case of TF Serving's handler test, and ours, answers a JSON error like TF Serving."""
    wrong = []
    async with http_runtime(broker.url, registry, unique) as http:
        cases = [*MALFORMED, *(("POST", p, b, s, m) for p, b, s, m in PREDICT_ERRORS)]
        for method, path, body, code, message in cases:
            status, answer, headers = await http.call(method, path, body or None)
            ok = (
                status == code
                and headers["Content-Type"].startswith("application/json")
                and isinstance(answer, dict)
                and list(answer) == ["error"]
                and message in str(answer["error"])
            )
            if not ok:
                wrong.append((method, path, body[:60], status, answer))
        invalid = http.runtime.metrics.registry.get_sample_value(
            "edge_invalid_requests_total", {"frontdoor": "tfserving", "reason": "malformed_path"}
        )
    assert not wrong, "\n".join(map(str, wrong))
    assert invalid
    assert invalid >= 10


async def test_every_input_form_is_served(broker, registry, unique):
    """Row and columnar formats, named inputs, gray and RGB faces, several instances, other
    sizes, a case-insensitive path, the registry name, and JPEG/PNG pictures as b64."""
    rgb = astronaut_face_rgb()
    floats = (rgb / 255.0).tolist()
    png = base64.b64encode(cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1]).decode()
    gray = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) / 255.0).tolist()
    big = (cv2.resize(rgb, (96, 96)) / 255.0).tolist()
    requests = {
        "row": (APP_PATH, {"instances": [floats]}, "predictions", 1),
        "columnar": (APP_PATH, {"inputs": [floats, floats]}, "outputs", 2),
        "columnar named": (APP_PATH, {"inputs": {"image": [floats]}}, "outputs", 1),
        "named rows": (APP_PATH, {"instances": [{"image": floats}] * 3}, "predictions", 3),
        "gray rows": (APP_PATH, {"instances": [gray]}, "predictions", 1),
        "96x96": (APP_PATH, {"instances": [big]}, "predictions", 1),
        "b64 png": (APP_PATH, {"instances": [{"b64": png}]}, "predictions", 1),
        "b64 columnar": (APP_PATH, {"inputs": {"b64": png}}, "outputs", 1),
        "latest": ("/v1/models/model_emotion:predict", {"instances": [floats]}, "predictions", 1),
        "registry name": ("/v1/models/emotion:predict", {"instances": [floats]}, "predictions", 1),
        "case": (
            "/V1/MODELS/model_emotion/VERSIONS/4:predict",
            {"instances": [floats]},
            "predictions",
            1,
        ),
    }
    answers = {}
    async with http_runtime(broker.url, registry, unique) as http:
        for name, (path, document, key, rows) in requests.items():
            status, answer, _ = await http.call("POST", path, json.dumps(document))
            assert status == 200, (name, answer)
            assert isinstance(answer, dict), name
            assert list(answer) == [key], name
            assert len(answer[key]) == rows, name
            answers[name] = answer[key][0]
    happy = FER2013.index("happy")
    for name, probabilities in answers.items():
        assert len(probabilities) == 7, name
        assert int(np.argmax(probabilities)) == happy, name
    assert answers["b64 png"] == pytest.approx(answers["row"], abs=1e-3)


async def test_status_and_metadata_have_tf_servings_shapes(broker, registry, unique):
    """Model status and metadata answer TF Serving's JSON; unknown models and versions 404."""
    async with http_runtime(
        broker.url, registry, unique, **{"http.tfserving_labels": "stable=4"}
    ) as http:
        status = {
            path: await http.call("GET", path)
            for path in (
                "/v1/models/model_emotion",
                "/v1/models/model_emotion/versions/4",
                "/v1/models/model_emotion/labels/stable",
                "/v1/models/model_emotion/versions/3",
                "/v1/models/foo",
                "/v1/models/model_emotion/metadata",
                "/v1/models/model_emotion/versions/4/metadata",
                "/v1/models/foo/metadata",
            )
        }
        labelled, _, _ = await http.call(
            "POST", "/v1/models/model_emotion/labels/stable:predict", '{"instances": [[[0.5]]]}'
        )
    available = {
        "model_version_status": [
            {
                "version": "4",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    for path in (
        "/v1/models/model_emotion",
        "/v1/models/model_emotion/versions/4",
        "/v1/models/model_emotion/labels/stable",
    ):
        assert status[path][:2] == (200, available), path
    assert status["/v1/models/model_emotion/versions/3"][:2] == (
        404,
        {"error": "Could not find version 3 of model model_emotion"},
    )
    assert status["/v1/models/foo"][:2] == (
        404,
        {"error": "Could not find any versions of model foo"},
    )
    assert status["/v1/models/foo/metadata"][:2] == (
        404,
        {"error": "Servable not found for request: Latest(foo)"},
    )
    code, metadata, _ = status["/v1/models/model_emotion/metadata"]
    assert code == 200
    assert status["/v1/models/model_emotion/versions/4/metadata"][1] == metadata
    assert metadata["model_spec"] == {"name": "model_emotion", "signature_name": "", "version": "4"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["image"]["dtype"] == "DT_FLOAT"
    assert signature["outputs"]["probabilities"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "7", "name": ""}],
        "unknown_rank": False,
    }
    assert labelled == 200


async def test_app_sim_replays_the_apps_request(broker, registry, unique):
    """``app-sim`` (the app's request from the command line, as the demo prints it) gets the
    smile in a real photo."""
    import sys

    async with http_runtime(broker.url, registry, unique) as http:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "device_sim.app",
            "--url",
            http.base,
            "--face",
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text
    assert "POST http://127.0.0.1:" in text
    assert "200 in" in text
    assert "(top: happy)" in text


async def test_configured_names_versions_and_float_range(broker, registry, unique):
    """Pinned registry versions answer only while they serve; several numbers may name the
    served model; byte-range floats are taken as 0..255."""
    overrides = {
        "http.tfserving_models": "faces=emotion",
        "http.tfserving_versions": "4=serving,7=1.0.0,8=9.9.9",
        "http.float_range": "byte",
    }
    async with http_runtime(broker.url, registry, unique, **overrides) as http:
        body = '{"instances": [[[128.0, 64.0]], [[255.0, 0.0]]]}'
        pinned, answer, headers = await http.call(
            "POST", "/v1/models/faces/versions/7:predict", body
        )
        other, missing, _ = await http.call("POST", "/v1/models/faces/versions/8:predict", body)
        old_name, _, _ = await http.call("POST", "/v1/models/model_emotion:predict", body)
        status, listed, _ = await http.call("GET", "/v1/models/faces")
        unit, refused, _ = await http.call(
            "POST", "/v1/models/faces:predict", '{"instances": [[[300.0]]]}'
        )
    assert pinned == 200, answer
    assert len(answer["predictions"]) == 2
    assert headers["X-Edge-Model-Version"] == "1.0.0"
    assert (other, missing) == (
        404,
        {"error": "Servable not found for request: Specific(faces, 8)"},
    )
    assert old_name == 404  # model_emotion is no longer mapped
    assert status == 200
    assert [v["version"] for v in listed["model_version_status"]] == ["7", "4"]
    assert unit == 400
    assert "within [0, 255]" in refused["error"]
