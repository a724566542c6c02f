"""Fine-tune a registered version on the simulator's synthetic faces and register the result.

The synthetic data comes from ``device_sim``'s public face renderer, so the fleet can
measure accuracy against the same distribution. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_trainer.pretrained import convert_tflite, load_keras_model
from cloud_trainer.registry import ArtefactFile, read_manifest, register

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FineTuneResult:
    """What a fine-tuning run produced."""

    manifest: Path
    accuracy: float
    parent_accuracy: float


def normalise(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """uint8 faces to the model's [-1, 1] input."""
    scaled: npt.NDArray[np.float32] = (images.astype(np.float32) / 255.0 - 0.5) * 2.0
    return scaled


def _accuracy(model: Any, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> float:
    probabilities = np.asarray(model([normalise(images)], training=False))
    return float((probabilities.argmax(axis=1) == labels).mean())


def finetune_synthetic(
    registry: Path,
    *,
    name: str = "emotion",
    parent_version: str = "1.0.0",
    version: str = "1.1.0",
    samples: int = 2800,
    epochs: int = 2,
    seed: int = 7,
) -> FineTuneResult:
    """Fine-tune ``parent_version``'s Keras file on rendered faces; register ``version``."""
    import keras

    from device_sim.faces import FaceRenderer

    keras.utils.set_random_seed(seed)
    parent_dir = registry / name / parent_version
    parent = read_manifest(parent_dir / "manifest.json")
    keras_file = next(f for f in parent.files if f.format == "keras")
    model = load_keras_model(parent_dir / keras_file.path)
    train_x, train_y = FaceRenderer(seed).dataset(samples)
    test_x, test_y = FaceRenderer(seed + 10_000).dataset(max(samples // 4, 70))
    parent_accuracy = _accuracy(model, test_x, test_y)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit([normalise(train_x)], train_y, batch_size=64, epochs=epochs, verbose=2)
    accuracy = _accuracy(model, test_x, test_y)
    _LOGGER.info(
        "accuracy on held-out synthetic faces: %.3f (parent %.3f)", accuracy, parent_accuracy
    )
    fingerprint = hashlib.sha256(f"synthetic:seed={seed}:n={samples}".encode()).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model.save(work / "model.keras")
        (work / "model.tflite").write_bytes(convert_tflite(model))
        manifest = register(
            registry,
            name=name,
            version=version,
            files=[
                ArtefactFile(
                    work / "model.tflite",
                    "model.tflite",
                    "tflite",
                    "float32",
                    {"accuracy": accuracy},
                ),
                ArtefactFile(
                    work / "model.keras", "model.keras", "keras", "keras", {"accuracy": accuracy}
                ),
            ],
            height=parent.input.height,
            width=parent.input.width,
            channels=parent.input.channels,
            labels=list(parent.labels),
            metrics={"accuracy": accuracy, "parent_accuracy": parent_accuracy},
            parent_version=parent_version,
            dataset_fingerprint=fingerprint,
            description=f"{parent_version} fine-tuned on {samples} synthetic faces, "
            f"{epochs} epochs",
        )
    return FineTuneResult(manifest, accuracy, parent_accuracy)
