"""The seam between the runtime and inference engines."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

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

    async def predict(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities, shape (N, labels), for an (N, H, W, C) batch, off the event loop."""
        ...

    def warm_up(self) -> None:
        """Run the model once per batch shape it will see (blocking; call off the loop)."""
        ...

    def close(self) -> None:
        """Release the worker thread and interpreter memory."""
        ...
