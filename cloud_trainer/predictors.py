"""Run Keras models and TFLite files over uint8 face batches, the way they are evaluated."""

from __future__ import annotations

import time
import warnings
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cloud_trainer.data import Images, normalise

Probabilities = npt.NDArray[np.float32]


class Predictor(Protocol):
    """Anything that maps uint8 faces to class probabilities."""

    def predict(self, images: Images) -> Probabilities:
        """Class probabilities ``(N, classes)`` of ``(N, H, W, C)`` uint8 faces."""
        ...


class KerasPredictor:
    """A Keras model in inference mode."""

    def __init__(self, model: Any, batch_size: int = 256) -> None:
        self._model = model
        self._batch_size = batch_size

    def predict(self, images: Images) -> Probabilities:
        """Class probabilities of ``images``."""
        with warnings.catch_warnings():
            # Models read from Keras 2 .h5 files (fer's, so 1.0.0's) expect their one input
            # in a list; Keras 3 warns and then takes the bare tensor all the same.
            warnings.filterwarnings("ignore", message=".*structure of `inputs` doesn't match")
            outputs = [
                np.asarray(self._model(normalise(images[i : i + self._batch_size]), training=False))
                for i in range(0, len(images), self._batch_size)
            ]
        return np.concatenate(outputs).astype(np.float32)


def interpreter_class() -> Any:
    """LiteRT's Interpreter class, or TensorFlow's where LiteRT is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter
    return Interpreter


class TfLitePredictor:
    """A TFLite flatbuffer on LiteRT (float interface; any internal quantisation)."""

    def __init__(self, content: bytes, *, batch_size: int = 32, threads: int = 1) -> None:
        self._content = content
        self._batch_size = batch_size
        self._threads = threads
        self._interpreters: dict[int, Any] = {}

    def _interpreter(self, batch: int, shape: tuple[int, ...]) -> Any:
        interpreter = self._interpreters.get(batch)
        if interpreter is None:
            interpreter = interpreter_class()(
                model_content=self._content, num_threads=self._threads
            )
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, [batch, *shape], strict=False)
            interpreter.allocate_tensors()
            self._interpreters[batch] = interpreter
        return interpreter

    def _invoke(self, batch: npt.NDArray[np.float32]) -> Probabilities:
        interpreter = self._interpreter(len(batch), tuple(batch.shape[1:]))
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        return np.array(output, dtype=np.float32)

    def predict(self, images: Images) -> Probabilities:
        """Class probabilities of ``images``."""
        inputs = normalise(images)
        return np.concatenate(
            [
                self._invoke(inputs[i : i + self._batch_size])
                for i in range(0, len(inputs), self._batch_size)
            ]
        )

    def latency_ms(self, image: Images, repeats: int = 50) -> float:
        """Median single-face invoke time in milliseconds (after one warm-up run)."""
        inputs = normalise(image[:1])
        self._invoke(inputs)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            self._invoke(inputs)
            samples.append(time.perf_counter() - start)
        return float(np.median(samples) * 1000.0)


__all__ = ["KerasPredictor", "Predictor", "Probabilities", "TfLitePredictor"]
