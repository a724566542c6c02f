"""TensorFlow models (``.keras``/``.h5`` or SavedModel); TensorFlow is imported lazily."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_runtime.backends.base import ManifestModel
from edge_runtime.errors import MissingDependency, ModelRejected
from edge_runtime.manifest import Manifest
from edge_runtime.messages import InputSpec


def _tensorflow() -> Any:
    try:
        return importlib.import_module("tensorflow")
    except ImportError as exc:
        raise MissingDependency("install kubeedge-edge-service[edge-tf]") from exc


def _load_function(path: Path, spec: InputSpec) -> Callable[[Any], Any]:
    tf = _tensorflow()
    signature = [tf.TensorSpec([None, spec.height, spec.width, spec.channels], tf.float32)]
    if path.is_dir():
        loaded = tf.saved_model.load(str(path))
        serving = loaded.signatures["serving_default"]

        def call(x: Any) -> Any:
            return next(iter(serving(x).values()))

        traced: Callable[[Any], Any] = tf.function(call, input_signature=signature)
        return traced
    keras = importlib.import_module("keras")
    # safe_mode: a model comes from the twin; a Lambda layer would run its Python code here.
    model = keras.models.load_model(str(path), compile=False, safe_mode=True)
    # Models saved by Keras 2 (like fer's h5) declare their input as a one-element list.
    wrap = isinstance(model.input, list)
    function: Callable[[Any], Any] = tf.function(
        lambda x: model([x] if wrap else x, training=False), input_signature=signature
    )
    return function


class TfModel(ManifestModel):
    """A Keras or SavedModel model run through a traced ``tf.function`` on one worker thread."""

    def __init__(self, path: Path, *, manifest: Manifest, max_batch: int) -> None:
        super().__init__(path, manifest, "tf")
        try:
            self._fn = self._executor.submit(_load_function, path, manifest.input).result()
        except (OSError, ValueError, RuntimeError) as exc:
            self._executor.shutdown(wait=False)
            raise ModelRejected(manifest.ref.version, f"TensorFlow cannot load it: {exc}") from exc

    def _run(
        self, batch: npt.NDArray[np.float32], threads: int | None = None
    ) -> npt.NDArray[np.float32]:
        del threads  # TensorFlow's pools are sized once per process
        return np.asarray(self._fn(batch), dtype=np.float32)

    def warm_up_steps(self) -> Sequence[Callable[[], object]]:
        """Trace the function once (the input signature takes any batch size)."""
        spec = self._manifest.input
        zeros = np.zeros((1, spec.height, spec.width, spec.channels), np.float32)
        return (functools.partial(self._run, zeros),)
