"""The seam between the runtime and inference engines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_runtime.manifest import Manifest
from edge_runtime.messages import InputSpec, ModelRef


class Model(Protocol):
    """A loaded model version that classifies batches of preprocessed faces."""

    @property
    def ref(self) -> ModelRef:
        """Name and version."""
        ...

    @property
    def input_spec(self) -> InputSpec:
        """Input of one face."""
        ...

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in output order."""
        ...

    @property
    def variant(self) -> str:
        """Which file of the version runs (float32, int8-dynamic, ...)."""
        ...

    @property
    def offload_scores(self) -> Mapping[str, tuple[float, ...]]:
        """Each hard-example score's percentiles on the calibration faces (empty: none)."""
        ...

    async def predict(
        self, batch: npt.NDArray[np.float32], *, threads: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Probabilities, shape (N, labels), for an (N, H, W, C) batch, off the event loop.

        ``threads``: interpreter threads, where the engine takes a count (None: its own).
        """
        ...

    def predict_now(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``predict`` on the calling thread (blocking; never beside another call)."""
        ...

    def warm_up(self) -> None:
        """Run the model once per batch shape it will see (blocking; call off the loop)."""
        ...

    def warm_up_steps(self) -> Sequence[Callable[[], object]]:
        """``warm_up`` in short blocking steps, to run off the loop with pauses between."""
        ...

    def close(self) -> None:
        """Release the worker thread and interpreter memory."""
        ...


class ManifestModel:
    """What every backend shares: identity from the manifest and one dedicated worker thread.

    Subclasses implement ``_run`` (blocking inference) and ``warm_up_steps``.
    """

    def __init__(self, path: Path, manifest: Manifest, engine: str) -> None:
        self._manifest = manifest
        running = next((f for f in manifest.files if manifest.directory / f.path == path), None)
        self._variant = running.variant if running is not None else "float32"
        self._offload_scores = running.offload_scores if running is not None else {}
        # One thread: interpreters are not thread-safe, and it keeps latency predictable.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{engine}[{manifest.ref.version}]"
        )

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

    @property
    def offload_scores(self) -> Mapping[str, tuple[float, ...]]:
        """Percentiles of each hard-example score over the calibration faces (this file)."""
        return self._offload_scores

    def _run(
        self, batch: npt.NDArray[np.float32], threads: int | None = None
    ) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def warm_up(self) -> None:
        """Run every warm-up step (blocking)."""
        for step in self.warm_up_steps():
            step()

    def warm_up_steps(self) -> Sequence[Callable[[], object]]:
        """One step per batch shape the model will see."""
        raise NotImplementedError

    async def predict(
        self, batch: npt.NDArray[np.float32], *, threads: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Probabilities for ``batch``, computed on the model's worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, batch, threads)

    def predict_now(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for ``batch``, computed on the calling thread."""
        return self._run(batch)

    def close(self) -> None:
        """Stop the worker thread after running batches finish."""
        self._executor.shutdown(wait=True)
