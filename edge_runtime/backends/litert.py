"""TFLite models on LiteRT (``ai-edge-litert``), falling back to tflite-runtime or tf.lite."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_runtime.backends.base import ManifestModel
from edge_runtime.errors import MissingDependency, ModelRejected
from edge_runtime.manifest import Manifest

_LOGGER = logging.getLogger(__name__)

_INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def interpreter_class() -> Any:
    """The first TFLite ``Interpreter`` class that imports and works with this numpy.

    Raises:
        MissingDependency: if no TFLite engine is installed.
    """
    for name in _INTERPRETER_MODULES:
        try:
            return importlib.import_module(name).Interpreter
        except ImportError:
            continue
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError as exc:
        raise MissingDependency(
            "no TFLite engine: install kubeedge-edge-service[edge] (ai-edge-litert)"
        ) from exc
    return tf.lite.Interpreter


def _buckets(max_batch: int) -> tuple[int, ...]:
    # Interpreters are sized per power-of-two bucket: resizing one interpreter per batch
    # re-plans the graph, and one per exact size multiplies the arena memory.
    sizes = [1]
    while sizes[-1] * 2 <= max_batch:
        sizes.append(sizes[-1] * 2)
    return tuple(sizes)


class LiteRtModel(ManifestModel):
    """A TFLite model with one interpreter per batch bucket on a dedicated worker thread."""

    def __init__(self, path: Path, *, manifest: Manifest, threads: int, max_batch: int) -> None:
        super().__init__(path, manifest, "litert")
        self._content = path.read_bytes()
        self._threads = threads
        self._buckets = _buckets(max_batch)
        self._cls = interpreter_class()
        self._interpreters: dict[int, Any] = {}
        try:
            self._interpreter(1)
        except (ValueError, RuntimeError) as exc:
            self._executor.shutdown(wait=False)
            raise ModelRejected(manifest.ref.version, f"TFLite cannot load it: {exc}") from exc

    def _interpreter(self, bucket: int) -> Any:
        interpreter = self._interpreters.get(bucket)
        if interpreter is None:
            spec = self._manifest.input
            interpreter = self._cls(model_content=self._content, num_threads=self._threads)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(
                index, [bucket, spec.height, spec.width, spec.channels], strict=False
            )
            interpreter.allocate_tensors()
            self._interpreters[bucket] = interpreter
        return interpreter

    def _run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        count = len(batch)
        outputs = []
        start = 0
        while start < count:
            # Largest bucket that fits: 13 faces run as 8 + 4 + 1, never padded.
            remaining = count - start
            bucket = max(b for b in self._buckets if b <= remaining)
            interpreter = self._interpreter(bucket)
            interpreter.set_tensor(
                interpreter.get_input_details()[0]["index"],
                batch[start : start + bucket],
            )
            interpreter.invoke()
            result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
            outputs.append(np.array(result, dtype=np.float32))
            start += bucket
        return np.concatenate(outputs)

    def warm_up_steps(self) -> Sequence[Callable[[], object]]:
        """Create and run one bucket's interpreter per step (each blocks for milliseconds)."""
        spec = self._manifest.input
        return tuple(
            functools.partial(
                self._run, np.zeros((bucket, spec.height, spec.width, spec.channels), np.float32)
            )
            for bucket in self._buckets
        )

    def close(self) -> None:
        """Stop the worker thread after running batches finish; free the interpreters."""
        super().close()
        self._interpreters.clear()
