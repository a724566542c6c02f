"""The incremental-learning step: hard examples in, a better version registered, or nothing.

Labels come from a human's corrections or else the cloud model's confident answers (never the
edge's own: it found these faces hard). The candidate is fine-tuned from the serving version
and must beat it on a held-out set the loop never trains on (the ``test`` split of
``held_out``; its ``val`` split stops training early and calibrates the new version's offload
scores). Only then is it exported, gated per variant and registered, with the serving version
as its parent. Examples whose face is in the held-out set are dropped, so the gate stays fair.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cloud_trainer.data import DataSet, Split, fingerprint
from cloud_trainer.evaluation import evaluate_predictions
from cloud_trainer.export import VARIANTS, ExportResult, export_and_register
from cloud_trainer.predictors import KerasPredictor
from cloud_trainer.registry import MANIFEST_NAME
from cloud_trainer.samples import Sample, labelled, read_samples
from cloud_trainer.training import TrainConfig, initial_model, train

_LOGGER = logging.getLogger(__name__)


class RetrainError(Exception):
    """Retraining cannot start (too few labelled examples, an unknown serving version)."""


@dataclass(frozen=True, slots=True)
class RetrainResult:
    """What one step of the loop did."""

    serving: str
    serving_accuracy: float
    candidate_accuracy: float
    examples: int  # labelled examples trained on
    export: ExportResult | None  # None: not better, nothing registered

    @property
    def registered(self) -> bool:
        """Whether a new version was registered."""
        return self.export is not None and self.export.manifest is not None


@dataclass(frozen=True, slots=True)
class RetrainPlan:
    """What to retrain from and how to judge it."""

    registry: Path
    name: str
    serving: str
    version: str
    samples: Path
    held_out: DataSet
    min_confidence: float = 0.9
    corrections: Mapping[str, str] | None = None
    min_examples: int = 20
    min_gain: float = 0.0  # the candidate must beat the serving version by more than this
    variants: tuple[str, ...] = VARIANTS
    max_drop: float = 0.01


def _faces(pairs: list[tuple[Sample, str]], side: int, labels: tuple[str, ...]) -> Split:
    import cv2

    images = np.empty((len(pairs), side, side, 1), np.uint8)
    for i, (sample, _) in enumerate(pairs):
        gray = sample.face
        if gray.shape[2] == 3:
            gray = np.asarray(cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY), np.uint8)[:, :, None]
        if gray.shape[:2] != (side, side):
            resized = cv2.resize(gray[:, :, 0], (side, side), interpolation=cv2.INTER_AREA)
            gray = np.asarray(resized, np.uint8)[:, :, None]
        images[i] = gray
    return Split(images, np.array([labels.index(label) for _, label in pairs], np.int64))


def retrain(plan: RetrainPlan, config: TrainConfig, run_dir: Path) -> RetrainResult:
    """Fine-tune ``plan.serving`` on the labelled hard examples; register it if it is better.

    Raises:
        RetrainError: if there are fewer than ``plan.min_examples`` labelled examples, or the
            serving version is not registered.
    """
    serving_dir = plan.registry / plan.name / plan.serving
    if not (serving_dir / MANIFEST_NAME).is_file():
        raise RetrainError(f"{plan.name} {plan.serving} is not registered in {plan.registry}")
    held_out = plan.held_out
    test = held_out.held_out()
    side = int(test.images.shape[1])
    reserved = {hashlib.sha256(image.tobytes()).hexdigest() for image in test.images}
    pairs = [
        (sample, label)
        for sample, label in labelled(
            list(read_samples(plan.samples)), plan.min_confidence, plan.corrections
        )
        if sample.sha256 not in reserved
    ]
    if len(pairs) < plan.min_examples:
        raise RetrainError(
            f"{len(pairs)} labelled hard examples in {plan.samples} "
            f"(at least {plan.min_examples} wanted)"
        )
    splits = {
        "train": _faces(pairs, side, held_out.labels),
        "val": held_out.split("val"),
        "test": test,
    }
    name = f"hard-examples:{len(pairs)}+{held_out.name}"
    dataset = DataSet(name, splits, held_out.labels, fingerprint(name, splits))
    serving_model = initial_model(
        TrainConfig(init_from=plan.serving), dataset, plan.registry, plan.name
    )
    serving = evaluate_predictions(
        test.labels,
        KerasPredictor(serving_model).predict(test.images).argmax(axis=1),
        held_out.labels,
    )
    config = replace(config, init_from=plan.serving)
    result = train(dataset, config, run_dir, registry=plan.registry, name=plan.name)
    candidate = evaluate_predictions(
        test.labels,
        KerasPredictor(result.model).predict(test.images).argmax(axis=1),
        held_out.labels,
    )
    _LOGGER.info(
        "held-out accuracy: serving %s %.3f, candidate %.3f (%d examples)",
        plan.serving,
        serving.accuracy,
        candidate.accuracy,
        len(pairs),
    )
    if candidate.accuracy <= serving.accuracy + plan.min_gain:
        return RetrainResult(plan.serving, serving.accuracy, candidate.accuracy, len(pairs), None)
    export = export_and_register(
        result.model,
        dataset,
        registry=plan.registry,
        name=plan.name,
        version=plan.version,
        variants=plan.variants,
        max_drop=plan.max_drop,
        parent_version=plan.serving,
        description=f"{plan.serving} fine-tuned on {len(pairs)} hard examples from the edge "
        f"(labels: corrections, or the cloud at >= {plan.min_confidence:g})",
        calibration_set=f"{held_out.name} (val)",
        extra_metrics={
            "parent_accuracy": serving.accuracy,
            "hard_examples": float(len(pairs)),
        },
    )
    return RetrainResult(plan.serving, serving.accuracy, candidate.accuracy, len(pairs), export)
