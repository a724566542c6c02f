"""Part 1, the ceiling: the raw LiteRT interpreter in process, no MQTT."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


@dataclass(frozen=True, slots=True)
class CeilingRow:
    """Faces per second of one (variant, threads, batch) cell."""

    variant: str
    threads: int
    batch: int
    faces_per_s: float
    cpu_ms_per_face: float = 0.0  # every thread of the process, the interpreter's own included


def measure(model: Path, variant: str, threads: int, batch: int, seconds: float) -> CeilingRow:
    """Invoke ``model`` at ``batch`` repeatedly for ``seconds``; faces per second."""
    interpreter = Interpreter(model_path=str(model), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [batch, 64, 64, 1], strict=False)
    interpreter.allocate_tensors()
    data = np.random.default_rng(0).uniform(-1, 1, (batch, 64, 64, 1)).astype(np.float32)
    interpreter.set_tensor(index, data)
    interpreter.invoke()  # warm-up
    runs = 0
    start, cpu = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        interpreter.set_tensor(index, data)
        interpreter.invoke()
        runs += 1
    spent = time.process_time() - cpu
    return CeilingRow(
        variant, threads, batch, runs * batch / elapsed, spent * 1000 / (runs * batch)
    )
