"""Part 1, the ceiling: the raw LiteRT interpreter in process, no MQTT."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter


@dataclass(frozen=True, slots=True)
class CeilingRow:
    """Faces per second of one (variant, threads, batch) cell."""

    variant: str
    threads: int
    batch: int
    faces_per_s: float
    cpu_ms_per_face: float = 0.0  # every thread of the process, the interpreter's own included


def _warmed(
    model: Path, threads: int, batch: int
) -> tuple[Interpreter, int, npt.NDArray[np.float32]]:
    """An interpreter sized for ``batch`` faces, its input index and a batch, run once."""
    interpreter = Interpreter(model_path=str(model), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [batch, 64, 64, 1], strict=False)
    interpreter.allocate_tensors()
    data = np.random.default_rng(0).uniform(-1, 1, (batch, 64, 64, 1)).astype(np.float32)
    interpreter.set_tensor(index, data)
    interpreter.invoke()  # warm-up
    return interpreter, index, data


def measure(model: Path, variant: str, threads: int, batch: int, seconds: float) -> CeilingRow:
    """Invoke ``model`` at ``batch`` repeatedly for ``seconds``; faces per second."""
    interpreter, index, data = _warmed(model, threads, batch)
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


@dataclass(frozen=True, slots=True)
class IdleRow:
    """One face's model time back to back, and after the core has idled between faces."""

    threads: int
    gap_ms: float
    back_to_back_ms: float  # median of one face's set_tensor + invoke, invoked continuously
    after_idle_ms: float  # the same after sleeping gap_ms before each face

    @property
    def ratio(self) -> float:
        """How much slower a face is after the idle gap."""
        return self.after_idle_ms / self.back_to_back_ms if self.back_to_back_ms else 0.0


def after_idle(model: Path, threads: int, gap_s: float, faces: int, blocks: int = 4) -> IdleRow:
    """Batch-1 faces of ``model`` back to back and each after ``gap_s`` asleep, in alternating
    blocks (so both meet the same machine): what a server that is not saturated sees, since
    between its requests the core idles. Medians of the per-face times."""
    interpreter, index, data = _warmed(model, threads, 1)
    times: dict[bool, list[float]] = {False: [], True: []}
    for block in range(2 * blocks):
        idle = block % 2 == 1
        for _ in range(max(1, faces // blocks)):
            if idle:
                time.sleep(gap_s)
            started = time.perf_counter()
            interpreter.set_tensor(index, data)
            interpreter.invoke()
            times[idle].append(time.perf_counter() - started)
    return IdleRow(
        threads,
        gap_s * 1000,
        float(np.median(times[False])) * 1000,
        float(np.median(times[True])) * 1000,
    )
