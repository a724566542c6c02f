"""The runtime's answers equal the reference Keras model's, through MQTT, for every backend."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime import FacePixels, Request, Status
from edge_runtime.preprocessing import normalise
from tests.support.devices import device
from tests.support.runtime import make_settings, running_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def real_faces() -> np.ndarray:
    """200 real 64x64 gray faces: scikit-image's LFW subset, plus mirror images."""
    import cv2
    from skimage import data

    faces = [
        cv2.resize((image * 255).astype(np.uint8), (64, 64), interpolation=cv2.INTER_LINEAR)
        for image in data.lfw_subset()[:100]
    ]
    stacked = np.stack(faces)
    return np.concatenate([stacked, stacked[:, :, ::-1]])[..., None]


@pytest.fixture(scope="module")
def keras_probabilities(registry, real_faces) -> np.ndarray:
    import keras

    model = keras.models.load_model(str(registry / "emotion" / "1.0.0" / "model.h5"), compile=False)
    return np.asarray(model([normalise(real_faces, "symmetric")], training=False))


async def _serve_all(settings, faces: np.ndarray) -> np.ndarray:
    async with (
        running_runtime(settings),
        device(settings.mqtt.broker, settings.topic_root, "parity") as cam,
    ):
        for start in range(0, len(faces), 8):
            chunk = tuple(FacePixels(f) for f in faces[start : start + 8])
            await cam.send(Request(str(start), "parity", 0, chunk))
        responses = await cam.receive((len(faces) + 7) // 8, timeout_s=60)
    assert all(r.status is Status.OK for r in responses)
    ordered = sorted(responses, key=lambda r: int(r.request_id))
    return np.array([res.probabilities for r in ordered for res in r.results])


async def test_float32_tflite_matches_keras_within_1e_4(
    broker, registry, unique, real_faces, keras_probabilities
):
    settings = make_settings(broker.url, registry, unique)
    served = await _serve_all(settings, real_faces)
    assert np.abs(served - keras_probabilities).max() < 1e-4


async def test_int8_dynamic_agrees_with_keras_on_99_percent_of_faces(
    broker, registry, unique, real_faces, keras_probabilities
):
    settings = make_settings(broker.url, registry, unique, **{"model.variant": "int8-dynamic"})
    served = await _serve_all(settings, real_faces)
    agreement = (served.argmax(1) == keras_probabilities.argmax(1)).mean()
    assert agreement >= 0.99


async def test_tensorflow_backend_serves_the_keras_file(
    broker, registry, unique, real_faces, keras_probabilities
):
    settings = make_settings(
        broker.url, registry, unique, **{"model.backend": "tf", "model.variant": "keras"}
    )
    served = await _serve_all(settings, real_faces[:16])
    assert np.abs(served - keras_probabilities[:16]).max() < 1e-5
