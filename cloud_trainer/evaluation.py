"""Honest evaluation: accuracy, macro-F1, per-class precision/recall, confusion matrix.

Metrics are computed from the confusion matrix with numpy, so they can be checked by hand;
reports are written as JSON, Markdown and a confusion-matrix PNG.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (0 where undefined)."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Classification quality of one model on one split."""

    accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class
    samples: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def confusion_matrix(
    true: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64], classes: int
) -> npt.NDArray[np.int64]:
    """Counts of (true, predicted) pairs, ``classes x classes``."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def evaluate_predictions(
    true: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64], labels: Sequence[str]
) -> Evaluation:
    """Metrics of ``predicted`` class indices against ``true`` ones.

    Raises:
        ValueError: on empty or mismatched inputs.
    """
    if len(true) == 0 or len(true) != len(predicted):
        raise ValueError(f"need equal, non-empty label arrays ({len(true)}, {len(predicted)})")
    matrix = confusion_matrix(true, predicted, len(labels))
    per_class = []
    for index, label in enumerate(labels):
        hits = int(matrix[index, index])
        precision = _ratio(hits, int(matrix[:, index].sum()))
        recall = _ratio(hits, int(matrix[index, :].sum()))
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class.append(ClassMetrics(label, precision, recall, f1, int(matrix[index].sum())))
    return Evaluation(
        accuracy=_ratio(int(np.trace(matrix)), len(true)),
        macro_f1=float(np.mean([c.f1 for c in per_class])),
        per_class=tuple(per_class),
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        samples=len(true),
    )


def markdown(evaluation: Evaluation, title: str) -> str:
    """A Markdown report: headline metrics, per-class table, confusion matrix."""
    labels = [c.label for c in evaluation.per_class]
    lines = [
        f"# {title}",
        "",
        f"- samples: {evaluation.samples}",
        f"- accuracy: {evaluation.accuracy:.4f}",
        f"- macro-F1: {evaluation.macro_f1:.4f}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {c.label} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.support} |"
        for c in evaluation.per_class
    ]
    lines += ["", "Confusion matrix (rows: true, columns: predicted)", ""]
    lines.append("| true \\ predicted | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    lines += [
        f"| {label} | " + " | ".join(str(v) for v in row) + " |"
        for label, row in zip(labels, evaluation.confusion, strict=True)
    ]
    return "\n".join(lines) + "\n"


def plot_confusion(evaluation: Evaluation, path: Path, title: str) -> None:
    """Write the row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [c.label for c in evaluation.per_class]
    matrix = np.asarray(evaluation.confusion, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if normalised[row, column] > 0.5 else "black"
        axes.text(column, row, str(int(count)), ha="center", va="center", color=colour, fontsize=8)
    figure.colorbar(image, ax=axes, label="fraction of true class")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(evaluation: Evaluation, directory: Path, title: str) -> list[Path]:
    """Write ``evaluation.json``, ``evaluation.md`` and ``confusion.png`` to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        directory / "evaluation.json",
        directory / "evaluation.md",
        directory / "confusion.png",
    ]
    paths[0].write_text(
        json.dumps({"title": title, **evaluation.to_dict()}, indent=2) + "\n", encoding="utf-8"
    )
    paths[1].write_text(markdown(evaluation, title), encoding="utf-8")
    plot_confusion(evaluation, paths[2], title)
    return paths


__all__ = [
    "ClassMetrics",
    "Evaluation",
    "confusion_matrix",
    "evaluate_predictions",
    "markdown",
    "plot_confusion",
    "write_report",
]
