"""TensorFlow models (``.keras``/``.h5`` or SavedModel); TensorFlow is imported lazily."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_runtime.errors import MissingDependency, ModelRejected
from edge_runtime.manifest import Manifest
from edge_runtime.messages import InputSpec, ModelRef


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
    model = keras.models.load_model(str(path), compile=False)
    # Models saved by Keras 2 (like fer's h5) declare their input as a one-element list.
    wrap = isinstance(model.input, list)
    function: Callable[[Any], Any] = tf.function(
        lambda x: model([x] if wrap else x, training=False), input_signature=signature
    )
    return function


class TfModel:
    """A Keras or SavedModel model run through a traced ``tf.function`` on one worker thread."""

    def __init__(self, path: Path, *, manifest: Manifest, max_batch: int) -> None:
        self._manifest = manifest
        self._variant = next(
            (f.variant for f in manifest.files if manifest.directory / f.path == path),
            "float32",
        )
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"tf[{manifest.ref.version}]"
        )
        try:
            self._fn = self._executor.submit(_load_function, path, manifest.input).result()
        except (OSError, ValueError, RuntimeError) as exc:
            self._executor.shutdown(wait=False)
            raise ModelRejected(manifest.ref.version, f"TensorFlow cannot load it: {exc}") from exc

    @property
    def ref(self) -> ModelRef:
        """Name and version."""
        return self._manifest.ref

    @property
    def input_spec(self) -> InputSpec:
        """Input of one face."""
        return self._manifest.input

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in output order."""
        return self._manifest.labels

    @property
    def variant(self) -> str:
        """Which file of the version runs."""
        return self._variant

    def _run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(self._fn(batch), dtype=np.float32)

    def warm_up(self) -> None:
        """Trace the function once (blocking)."""
        spec = self._manifest.input
        self._run(np.zeros((1, spec.height, spec.width, spec.channels), np.float32))

    async def predict(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for ``batch``, computed on the model's worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, batch)

    def close(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=True)
