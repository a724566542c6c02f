"""Export a trained Keras model as TFLite variants, measure each, gate, and register.

Every variant (float32, dynamic-range int8, full int8 with representative data) is evaluated
on the same held-out split as the Keras model. A variant whose accuracy falls more than
``max_drop`` below the Keras model's is refused (left out of the version) unless forced.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud_trainer.calibration import offload_scores
from cloud_trainer.data import DataSet, normalise
from cloud_trainer.evaluation import Evaluation, evaluate_predictions, write_report
from cloud_trainer.predictors import KerasPredictor, TfLitePredictor
from cloud_trainer.pretrained import convert_tflite
from cloud_trainer.registry import ArtefactFile, register

_LOGGER = logging.getLogger(__name__)

VARIANTS = ("float32", "int8-dynamic", "int8-full")
VARIANT_FILES = {
    "float32": "model.tflite",
    "int8-dynamic": "model-int8-dynamic.tflite",
    "int8-full": "model-int8-full.tflite",
}
REPRESENTATIVE_SAMPLES = 200


class ExportRefused(Exception):
    """No variant passed the accuracy gate (or the float32 reference failed it)."""


@dataclass(frozen=True, slots=True)
class VariantReport:
    """How one exported file measured against the Keras model."""

    variant: str
    file: str
    size_bytes: int
    accuracy: float
    macro_f1: float
    accuracy_drop: float  # Keras accuracy minus this variant's, in [0, 1] units
    latency_ms: float
    accepted: bool


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The reference evaluation, every variant's report, and the manifest (if registered)."""

    reference: Evaluation
    variants: tuple[VariantReport, ...]
    manifest: Path | None


def convert(model: Any, variant: str, dataset: DataSet) -> bytes:
    """One TFLite variant of ``model`` (full int8 calibrates on training faces)."""
    if variant == "float32":
        return convert_tflite(model)
    if variant == "int8-dynamic":
        return convert_tflite(model, dynamic_int8=True)
    if variant == "int8-full":
        train = dataset.split("train").images
        picks = np.random.default_rng(0).permutation(len(train))[:REPRESENTATIVE_SAMPLES]
        return convert_tflite(model, representative=normalise(train[picks]))
    raise ValueError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")


def markdown_table(result: ExportResult) -> str:
    """The export report as a Markdown table."""
    lines = [
        f"Keras reference: accuracy {result.reference.accuracy:.4f}, "
        f"macro-F1 {result.reference.macro_f1:.4f} on {result.reference.samples} held-out faces",
        "",
        "| variant | file | size (KiB) | accuracy | macro-F1 | drop (points) "
        "| latency (ms) | accepted |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {v.variant} | {v.file} | {v.size_bytes / 1024:.1f} | {v.accuracy:.4f} | "
        f"{v.macro_f1:.4f} | {v.accuracy_drop * 100:+.2f} | {v.latency_ms:.2f} | "
        f"{'yes' if v.accepted else 'REFUSED'} |"
        for v in result.variants
    ]
    return "\n".join(lines) + "\n"


def export_and_register(
    model: Any,
    dataset: DataSet,
    *,
    registry: Path,
    name: str,
    version: str,
    variants: Sequence[str] = VARIANTS,
    max_drop: float = 0.01,
    force: bool = False,
    parent_version: str = "",
    description: str = "",
    extra_metrics: dict[str, float] | None = None,
    calibration_set: str = "",
) -> ExportResult:
    """Convert, evaluate and gate ``variants``; register the accepted ones as ``version``.

    Each accepted file's offload scores are measured on ``dataset``'s val split (named
    ``calibration_set`` in the manifest; default: the data set's name).

    Raises:
        ExportRefused: if no variant passed the gate.
        RegistryError: if ``version`` already exists.
    """
    held_out = dataset.held_out()
    calibration = dataset.splits.get("val", held_out)
    calibration_set = calibration_set or (
        f"{dataset.name} ({'val' if 'val' in dataset.splits else 'held out'})"
    )
    labels = dataset.labels
    scores: dict[str, dict[str, tuple[float, ...]]] = {}  # by variant
    reference = evaluate_predictions(
        held_out.labels, KerasPredictor(model).predict(held_out.images).argmax(axis=1), labels
    )
    reports: list[VariantReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for variant in variants:
            content = convert(model, variant, dataset)
            file = VARIANT_FILES[variant]
            (work / file).write_bytes(content)
            predictor = TfLitePredictor(content)
            evaluation = evaluate_predictions(
                held_out.labels, predictor.predict(held_out.images).argmax(axis=1), labels
            )
            drop = reference.accuracy - evaluation.accuracy
            accepted = force or drop <= max_drop
            if accepted:
                scores[variant] = offload_scores(predictor, calibration)
            reports.append(
                VariantReport(
                    variant,
                    file,
                    len(content),
                    evaluation.accuracy,
                    evaluation.macro_f1,
                    drop,
                    predictor.latency_ms(held_out.images),
                    accepted,
                )
            )
            if not accepted:
                _LOGGER.warning(
                    "%s refused: accuracy drop %.2f points > %.2f (force to register it)",
                    variant,
                    drop * 100,
                    max_drop * 100,
                )
        accepted_reports = [r for r in reports if r.accepted]
        result = ExportResult(reference, tuple(reports), None)
        if not accepted_reports:
            raise ExportRefused(
                "every variant failed the accuracy gate:\n" + markdown_table(result)
            )
        model.save(work / "model.keras")
        report_files = write_report(reference, work / "report", f"{name} {version} (Keras)")
        (work / "report" / "export.md").write_text(markdown_table(result), encoding="utf-8")
        (work / "report" / "export.json").write_text(
            json.dumps(
                {
                    "reference": reference.to_dict(),
                    "variants": [asdict(r) for r in reports],
                    "dataset": dataset.name,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        files = [
            ArtefactFile(
                work / r.file,
                r.file,
                "tflite",
                r.variant,
                {
                    "accuracy": r.accuracy,
                    "macro_f1": r.macro_f1,
                    "accuracy_drop": r.accuracy_drop,
                    "latency_ms": r.latency_ms,
                },
                scores[r.variant],
            )
            for r in accepted_reports
        ]
        files.append(
            ArtefactFile(
                work / "model.keras",
                "model.keras",
                "keras",
                "keras",
                {"accuracy": reference.accuracy, "macro_f1": reference.macro_f1},
            )
        )
        files += [
            ArtefactFile(path, f"report/{path.name}", "report", "evaluation")
            for path in [
                *report_files,
                work / "report" / "export.md",
                work / "report" / "export.json",
            ]
        ]
        metrics = {
            "accuracy": reference.accuracy,
            "macro_f1": reference.macro_f1,
            "eval_samples": float(reference.samples),
            **(extra_metrics or {}),
        }
        manifest = register(
            registry,
            name=name,
            version=version,
            files=files,
            height=int(held_out.images.shape[1]),
            width=int(held_out.images.shape[2]),
            channels=int(held_out.images.shape[3]),
            labels=labels,
            metrics=metrics,
            parent_version=parent_version,
            dataset_fingerprint=dataset.fingerprint,
            description=description or f"trained on {dataset.name}",
            calibration_set=calibration_set,
        )
    return ExportResult(reference, tuple(reports), manifest)


__all__ = [
    "REPRESENTATIVE_SAMPLES",
    "VARIANTS",
    "VARIANT_FILES",
    "ExportRefused",
    "ExportResult",
    "VariantReport",
    "convert",
    "export_and_register",
    "markdown_table",
]
