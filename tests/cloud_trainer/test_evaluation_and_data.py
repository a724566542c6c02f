"""Evaluation numbers against a hand computation; FER2013 CSV and image-folder sources."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_trainer import data
from cloud_trainer.evaluation import evaluate_predictions, write_report


def test_metrics_match_a_hand_computation(tmp_path: Path):
    labels = ("a", "b", "c")
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0, 1])
    result = evaluate_predictions(true, predicted, labels)
    # Confusion rows (true) x columns (predicted):
    #   a: [2, 1, 0]   b: [0, 1, 1]   c: [1, 1, 3]
    assert result.confusion == ((2, 1, 0), (0, 1, 1), (1, 1, 3))
    assert result.accuracy == pytest.approx(6 / 10)
    a, b, c = result.per_class
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert (c.precision, c.recall) == (pytest.approx(3 / 4), pytest.approx(3 / 5))
    f1_b = 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2)  # 0.4
    f1_c = 2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5)  # 0.6667
    assert b.f1 == pytest.approx(f1_b)
    assert result.macro_f1 == pytest.approx((2 / 3 + f1_b + f1_c) / 3)

    paths = write_report(result, tmp_path, "hand")
    assert json.loads(paths[0].read_text())["accuracy"] == pytest.approx(0.6)
    assert "| c | 0.750 | 0.600 |" in paths[1].read_text()
    assert paths[2].read_bytes().startswith(b"\x89PNG")


def test_a_class_never_predicted_has_zero_precision_not_nan():
    result = evaluate_predictions(np.array([0, 1]), np.array([0, 0]), ("a", "b"))
    assert result.per_class[1].precision == 0.0
    assert result.per_class[1].f1 == 0.0


def _fer_csv(path: Path, rows: list[tuple[int, str]]) -> Path:
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for label, usage in rows:
        pixels = " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))
        lines.append(f"{label},{pixels},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fer2013_csv_is_split_by_usage_and_resized(tmp_path: Path):
    rows = [(i % 7, "Training") for i in range(20)] + [(3, "PublicTest"), (4, "PrivateTest")]
    dataset = data.load(str(_fer_csv(tmp_path / "fer2013.csv", rows)))
    assert set(dataset.splits) == {"train", "val", "test"}
    assert dataset.split("train").images.shape == (20, 64, 64, 1)
    assert dataset.split("test").labels.tolist() == [4]
    assert dataset.held_out() is dataset.split("test")
    again = data.load(str(tmp_path / "fer2013.csv"))
    assert again.fingerprint == dataset.fingerprint


def test_fer2013_csv_errors_name_the_line(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n9,1 2 3 4,Training\n")
    with pytest.raises(data.DataError, match=r"bad.csv:2: emotion 9"):
        data.load(str(bad))
    bad.write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    with pytest.raises(data.DataError, match="not a square"):
        data.load(str(bad))
    bad.write_text("label,pixels\n1,1 2 3 4\n")
    with pytest.raises(data.DataError, match="missing column"):
        data.load(str(bad))


def test_image_folder_reads_labels_by_name_and_carves_a_val_split(tmp_path: Path):
    for split, count in (("train", 10), ("test", 2)):
        for label in ("happy", "sad"):
            folder = tmp_path / "faces" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                cv2.imwrite(str(folder / f"{i}.png"), np.full((80, 80), 10 * i, np.uint8))
    dataset = data.load(str(tmp_path / "faces"))
    assert set(dataset.splits) == {"train", "val", "test"}
    assert len(dataset.split("train")) + len(dataset.split("val")) == 20
    assert sorted(set(dataset.split("test").labels.tolist())) == [3, 4]  # happy, sad
    assert dataset.split("test").images.shape[1:] == (64, 64, 1)
    (tmp_path / "faces" / "train" / "smug").mkdir()
    with pytest.raises(data.DataError, match="smug"):
        data.load(str(tmp_path / "faces"))


def test_unknown_source_is_refused():
    with pytest.raises(data.DataError, match="synthetic"):
        data.load("/nonexistent/data")
    with pytest.raises(data.DataError, match="whole number"):
        data.load("synthetic:many")
