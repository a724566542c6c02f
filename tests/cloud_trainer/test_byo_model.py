"""Bring your own model: a user's TFLite classifier registered with one command, then served by
every front door."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cloud_trainer.__main__ import main as trainer
from cloud_trainer.registry import read_manifest, sha256_bytes
from edge_runtime import FacePixels, Request, Status
from tests.support.devices import device
from tests.support.http import APP_PATH, app_body, astronaut_face_rgb, http_runtime
from tests.support.until import until

pytestmark = pytest.mark.integration

LABELS = "positive,neutral,negative,surprised"


def _tflite(path: Path, *, softmax: bool, channels: int = 3) -> Path:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((32, 32, channels))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(4)(x)
    if softmax:
        x = tf.keras.layers.Softmax()(x)
    model = tf.keras.Model(inputs, x)
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.fixture(scope="module")
def user_models(tmp_path_factory) -> dict[str, Path]:
    """A user's classifier (32x32 RGB, unit, 4 labels) and one ending in logits."""
    root = tmp_path_factory.mktemp("byo")
    return {
        "good": _tflite(root / "mood.tflite", softmax=True),
        "logits": _tflite(root / "logits.tflite", softmax=False),
    }


def _add(registry: Path, model: Path, *extra: str) -> int:
    return trainer(
        ["--registry", str(registry), "--name", "mood", "registry", "add", str(model), *extra]
    )


def test_registry_add_writes_the_manifest_and_refuses_false_claims(user_models, tmp_path, capsys):
    """One command registers the file with its input, normalisation, labels and sha256;
    a wrong channel count, label count, or outputs that are not probabilities are refused."""
    claims = ["--input", "32x32x3", "--normalisation", "unit", "--labels", LABELS]
    assert _add(tmp_path, user_models["good"], "--version", "1.0.0", *claims) == 0
    manifest = read_manifest(tmp_path / "mood" / "1.0.0" / "manifest.json")
    assert (manifest.input.height, manifest.input.width, manifest.input.channels) == (32, 32, 3)
    assert list(manifest.labels) == LABELS.split(",")
    assert manifest.files[0].sha256 == sha256_bytes(user_models["good"].read_bytes())
    refused = {
        "channels": (user_models["good"], "--input", "32x32x1", "--normalisation", "unit"),
        "labels": (user_models["good"], "--input", "32x32x3", "--normalisation", "unit"),
        "logits": (user_models["logits"], "--input", "32x32x3", "--normalisation", "unit"),
        "form": (user_models["good"], "--input", "32x32", "--normalisation", "unit"),
        "exists": (user_models["good"], "--input", "32x32x3", "--normalisation", "unit"),
    }
    capsys.readouterr()
    for case, (model, *args) in refused.items():
        version = "1.0.0" if case == "exists" else "2.0.0"
        labels = "a,b,c" if case == "labels" else LABELS
        assert _add(tmp_path, model, "--version", version, *args, "--labels", labels) == 1, case
    text = capsys.readouterr().out
    for expected in (
        "does not run on 32x32x1",
        "[2, 3] was expected",
        "not probabilities",
        "HxWxC",
        "already registered",
    ):
        assert expected in text.replace("\n", " "), expected
    assert not (tmp_path / "mood" / "2.0.0").exists()


async def test_a_users_model_is_served_by_every_front_door(broker, user_models, tmp_path, unique):
    """Registered, it answers the reference app (its 48x48x3 converted to the model's 32x32x3),
    Open Inference Protocol clients and MQTT devices, with its own labels."""
    claims = ["--input", "32x32x3", "--normalisation", "unit", "--labels", LABELS]
    assert _add(tmp_path, user_models["good"], "--version", "1.0.0", *claims) == 0
    rgb = astronaut_face_rgb()
    async with (
        http_runtime(
            broker.url,
            tmp_path,
            unique,
            **{"model.name": "mood", "http.tfserving_models": "model_emotion=mood"},
        ) as http,
        device(broker.url, http.settings.topic_root, "cam") as cam,
    ):
        app_status, app_answer, _ = await http.call("POST", APP_PATH, app_body(rgb))
        v2 = {
            "inputs": [
                {
                    "name": "face",
                    "shape": [1, 32, 32, 3],
                    "datatype": "UINT8",
                    "data": np.zeros(32 * 32 * 3, int).tolist(),
                }
            ]
        }
        v2_status, v2_answer, _ = await http.call("POST", "/v2/models/mood/infer", json.dumps(v2))
        await cam.send(Request("gray", "cam", 0, (FacePixels(rgb[..., :1].copy()),)))
        (mqtt_answer,) = await cam.receive(1)
    assert app_status == 200, app_answer
    (probabilities,) = app_answer["predictions"]
    assert len(probabilities) == 4
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert v2_status == 200, v2_answer
    assert v2_answer["model_name"] == "mood"
    labels = next(o for o in v2_answer["outputs"] if o["name"] == "label")["data"]
    assert labels[0] in LABELS.split(",")
    assert mqtt_answer.status is Status.OK
    assert mqtt_answer.results[0].label in LABELS.split(",")
    assert len(mqtt_answer.results[0].probabilities) == 4


async def test_a_users_model_is_pushed_like_any_version(broker, user_models, tmp_path, unique):
    """A second registered version of the user's model goes through the device twin like the
    trainer's versions: fetched, verified, swapped, and the app's requests follow it."""

    from cloud_trainer.push import desired_twins
    from cloud_trainer.store import ModelStore
    from kubeedge_twin import Layout
    from tests.support.kubeedge import reported_twins, standin

    claims = ["--input", "32x32x3", "--normalisation", "unit", "--labels", LABELS]
    for version in ("1.0.0", "1.1.0"):
        assert _add(tmp_path, user_models["good"], "--version", version, *claims) == 0
    store = ModelStore(tmp_path)
    store.start()
    twin = {
        "model.name": "mood",
        "http.tfserving_models": "model_emotion=mood",
        "twin.enabled": True,
        "twin.layout": Layout.V1_4.value,
        "twin.cache_dir": str(tmp_path / "cache"),
    }
    try:
        with standin(broker, Layout.V1_4, f"emotion-runtime-rt-{unique}") as edgecore:
            async with http_runtime(broker.url, tmp_path, unique, **twin) as http:
                body = app_body(astronaut_face_rgb())
                _, _, before = await http.call("POST", APP_PATH, body)
                device_id = http.settings.twin_device
                edgecore.set_desired(device_id, desired_twins(tmp_path, "mood", "1.1.0", store.url))
                await until(
                    lambda: reported_twins(edgecore, device_id).get("model_version") == "1.1.0"
                )
                status, answer, after = await http.call("POST", APP_PATH, body)
    finally:
        store.stop()
    assert before["X-Edge-Model-Version"] == "1.0.0"
    assert status == 200, answer
    assert after["X-Edge-Model-Version"] == "1.1.0"
