"""TFLite models on LiteRT (``ai-edge-litert``), falling back to tflite-runtime or tf.lite."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_runtime.backends.base import ManifestModel
from edge_runtime.backends.threads import ThreadChoice
from edge_runtime.errors import MissingDependency, ModelRejected
from edge_runtime.manifest import Manifest

_LOGGER = logging.getLogger(__name__)

_INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
_MAX_AUTO_THREADS = 4
_PROBE_FACES = 48  # faces each thread count is timed on per bucket at warm-up
_PROBE_MIN_RUNS = 3


def thread_candidates(threads: int) -> tuple[int, ...]:
    """``threads`` alone, or for 0 (auto) every count from 1 to the cores (at most 4)."""
    if threads > 0:
        return (threads,)
    return tuple(range(1, min(os.cpu_count() or 1, _MAX_AUTO_THREADS) + 1))


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
    """A TFLite model: one interpreter per batch bucket and thread count.

    The thread count is chosen by measurement for each bucket (``ThreadChoice``): what one
    face costs depends on the batch size, so only batches of one size are compared. Only the
    chosen count's interpreters are kept (the others, 22 MB of RSS here, are made again when
    tried). Batches run on the caller's thread or a dedicated worker; a batch given a thread
    count (off the loop while the loop thread is saturated: ``edge_runtime.placement``) runs on
    that count's interpreters, made when first needed.
    """

    def __init__(self, path: Path, *, manifest: Manifest, threads: int, max_batch: int) -> None:
        super().__init__(path, manifest, "litert")
        self._content = path.read_bytes()
        self._buckets = _buckets(max_batch)
        candidates = thread_candidates(threads)
        self.thread_choices = {bucket: ThreadChoice(candidates) for bucket in self._buckets}
        self._cls = interpreter_class()
        self._interpreters: dict[tuple[int, int], tuple[Any, int, int]] = {}
        try:
            self._interpreter(candidates[-1], 1)
        except (ValueError, RuntimeError) as exc:
            self._executor.shutdown(wait=False)
            raise ModelRejected(manifest.ref.version, f"TFLite cannot load it: {exc}") from exc

    def _interpreter(self, threads: int, bucket: int) -> tuple[Any, int, int]:
        """The interpreter for ``bucket`` faces on ``threads`` threads, and its tensor indices."""
        entry = self._interpreters.get((threads, bucket))
        if entry is None:
            spec = self._manifest.input
            interpreter = self._cls(model_content=self._content, num_threads=threads)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(
                index, [bucket, spec.height, spec.width, spec.channels], strict=False
            )
            interpreter.allocate_tensors()
            entry = (interpreter, index, interpreter.get_output_details()[0]["index"])
            self._interpreters[(threads, bucket)] = entry
        return entry

    def _run(
        self, batch: npt.NDArray[np.float32], threads: int | None = None
    ) -> npt.NDArray[np.float32]:
        """``batch`` on the chosen thread count per bucket, or on ``threads`` when given.

        A given count is not timed for the choice: it runs where the choice's costs do not apply.
        """
        count = len(batch)
        outputs = []
        start = 0
        while start < count:
            # Largest bucket that fits: 13 faces run as 8 + 4 + 1, never padded.
            remaining = count - start
            bucket = max(b for b in self._buckets if b <= remaining)
            part = batch[start : start + bucket]
            if threads is None:
                outputs.append(self._chosen_run(part, bucket))
            else:
                outputs.append(self._invoke(part, threads, bucket))
            start += bucket
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _chosen_run(self, part: npt.NDArray[np.float32], bucket: int) -> npt.NDArray[np.float32]:
        choice = self.thread_choices[bucket]
        best, threads = choice.best, choice.threads()
        started = time.perf_counter()
        output = self._invoke(part, threads, bucket)
        choice.record(threads, bucket, time.perf_counter() - started)
        if choice.best != best:
            self._chosen(bucket)
        if threads != choice.best and choice.exploring is None:
            self._drop(threads, bucket)  # tried and not kept
        return output

    def _invoke(
        self, batch: npt.NDArray[np.float32], threads: int, bucket: int
    ) -> npt.NDArray[np.float32]:
        interpreter, input_index, output_index = self._interpreter(threads, bucket)
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        result: npt.NDArray[np.float32] = interpreter.get_tensor(output_index).copy()
        return result

    def _probe(self, bucket: int) -> None:
        """Make ``bucket``'s interpreters, time each thread count on them, tell the choice."""
        spec = self._manifest.input
        batch = np.zeros((bucket, spec.height, spec.width, spec.channels), np.float32)
        choice = self.thread_choices[bucket]
        for threads in choice.candidates:
            self._invoke(batch, threads, bucket)
            if len(choice.candidates) == 1:
                return  # a fixed count: made and run once, nothing to time
            times = []
            for _ in range(max(_PROBE_MIN_RUNS, _PROBE_FACES // bucket)):
                started = time.perf_counter()
                self._invoke(batch, threads, bucket)
                times.append(time.perf_counter() - started)
            choice.seed(threads, statistics.median(times) / bucket)
        for threads in choice.candidates:
            if threads != choice.best:
                self._drop(threads, bucket)

    def _drop(self, threads: int, bucket: int) -> None:
        """Free an interpreter not serving (about 4 MB each here; made again when tried)."""
        self._interpreters.pop((threads, bucket), None)

    def _chosen(self, bucket: int) -> None:
        choice = self.thread_choices[bucket]
        _LOGGER.info(
            "%s %s: batches of %d on %d interpreter thread(s); measured per face: %s",
            self.ref.name,
            self.ref.version,
            bucket,
            choice.best,
            ", ".join(f"{t} thread(s) {s * 1e3:.3f} ms" for t, s in sorted(choice.costs.items())),
        )

    def warm_up_steps(self) -> Sequence[Callable[[], object]]:
        """Per bucket, create its interpreters and time each thread count on them.

        One step a bucket; each blocks for milliseconds.
        """
        steps: list[Callable[[], object]] = []
        for bucket in self._buckets:
            steps.append(functools.partial(self._probe, bucket))
            if len(self.thread_choices[bucket].candidates) > 1:
                steps.append(functools.partial(self._chosen, bucket))
        return tuple(steps)

    def close(self) -> None:
        """Stop the worker thread after running batches finish; free the interpreters."""
        super().close()
        self._interpreters.clear()
