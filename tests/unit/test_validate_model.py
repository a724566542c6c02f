"""The check a new version passes before it is served: a probability per label per face,
with the slack a full-int8 file's 1/256 steps need and no more."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from edge_runtime.backends import validate_model
from edge_runtime.errors import ModelRejected
from edge_runtime.testing import FakeModel


class Quantised(FakeModel):
    """Rows that miss a sum of 1 by ``off``, from a file of ``variant``."""

    def __init__(self, variant: str, off: float) -> None:
        super().__init__()
        self._variant, self._off = variant, off

    @property
    def variant(self) -> str:
        return self._variant

    def predict_now(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows = np.full((len(batch), 3), 85 / 256, np.float32)  # 3 x 85/256: 0.996
        rows[:, 0] += self._off - (255 / 256 - 1)
        return rows


@pytest.mark.parametrize(
    ("variant", "off", "taken"),
    [
        ("int8-full", 3 / 256 - 1e-4, True),  # within a step per label
        ("int8-full", 0.5, False),
        ("float32", 0.0, True),
        ("float32", 0.01, False),  # what int8 may do, a float file may not
    ],
)
async def test_full_int8_outputs_get_a_step_per_label(
    variant: str, off: float, taken: bool
) -> None:
    model = Quantised(variant, off)
    if taken:
        await validate_model(model)
    else:
        with pytest.raises(ModelRejected, match="not probabilities"):
            await validate_model(model)
