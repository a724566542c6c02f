"""How hard a model file finds the calibration faces: what joint inference's target rate needs.

For each policy whose score depends on the model (``margin``, ``max_prob``, ``entropy``), the
101 percentiles of the scores of the calibration faces go into the file's manifest entry
(``offload_scores``); the runtime turns ``offload.target_rate`` into a threshold from them
(``edgeinfer.hardness.threshold_at``), per version and per file, so a new version offloads
about the same share of faces as the one before instead of a threshold tuned for another model.
"""

from __future__ import annotations

import random

from cloud_trainer.data import Split
from cloud_trainer.predictors import Predictor
from edgeinfer.hardness import Policy, quantiles, score

CALIBRATION_SEED = 7  # synthetic's default: its val split is the renderer's calibration set
CALIBRATION_FACES = 700


def offload_scores(predictor: Predictor, faces: Split) -> dict[str, tuple[float, ...]]:
    """The percentiles of each calibrated policy's score over ``faces``."""
    probabilities = predictor.predict(faces.images).tolist()
    unused = random.Random(0)  # noqa: S311 - the calibrated policies draw nothing
    return {
        policy.value: quantiles([score(policy, row, unused) for row in probabilities])
        for policy in Policy
        if policy.calibrated
    }


def renderer_faces(side: int) -> tuple[Split, str]:
    """The rendered faces a model not trained here is calibrated on, and their name.

    The same faces as the val split of ``synthetic`` at its defaults, rendered alone.
    """
    from edgeinfer.faces import FaceRenderer

    faces = Split(*FaceRenderer(CALIBRATION_SEED + 10_000).dataset(CALIBRATION_FACES, side=side))
    return faces, f"synthetic:{CALIBRATION_FACES * 4}:{CALIBRATION_SEED} (val)"
