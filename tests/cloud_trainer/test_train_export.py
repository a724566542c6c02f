"""Training smoke test on rendered faces, export variants through the runtime's backends."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_trainer import data
from cloud_trainer.__main__ import main as cloud_trainer_main
from cloud_trainer.export import ExportRefused, export_and_register
from cloud_trainer.predictors import KerasPredictor, TfLitePredictor
from cloud_trainer.registry import FER_LABELS, MANIFEST_NAME, verify_files
from cloud_trainer.samples import SampleIntake
from cloud_trainer.training import TrainConfig, train
from edge_runtime.backends import open_model_files
from edge_runtime.manifest import read_manifest
from edge_runtime.preprocessing import normalise
from edge_runtime.settings import BackendKind
from edgeinfer.faces import FaceRenderer
from edgeinfer.hardness import Policy, score, threshold_at
from edgeinfer.v1 import inference_pb2, samples_pb2

pytestmark = pytest.mark.slow
CHANCE = 1 / 7


@pytest.fixture(scope="module")
def trained(registry: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("train-registry")
    shutil.copytree(registry / "emotion" / "1.0.0", root / "emotion" / "1.0.0")
    dataset = data.synthetic(1400, seed=3)
    run_dir = root / "run"
    config = TrainConfig(epochs=6, patience=6, seed=3, verbose=0)
    result = train(dataset, config, run_dir, registry=root, name="emotion")
    export = export_and_register(
        result.model, dataset, registry=root, name="emotion", version="2.0.0", max_drop=0.05
    )
    return {"root": root, "dataset": dataset, "result": result, "export": export, "run": run_dir}


def test_training_from_scratch_learns_well_above_chance(trained):
    export = trained["export"]
    assert export.reference.accuracy > 4 * CHANCE, export.reference
    assert export.reference.macro_f1 > 0.5
    run = trained["run"]
    assert (run / "model.keras").is_file()
    assert len(list((run / "checkpoints").glob("epoch-*.keras"))) == trained["result"].epochs_run
    assert "val_accuracy" in trained["result"].history


def test_registered_version_has_every_variant_metrics_and_reports(trained):
    directory = trained["root"] / "emotion" / "2.0.0"
    manifest = read_manifest(directory / MANIFEST_NAME)
    variants = {f.variant for f in manifest.files}
    assert {"float32", "int8-dynamic", "int8-full", "keras"} <= variants
    assert verify_files(directory) == []
    assert (directory / "report" / "confusion.png").read_bytes().startswith(b"\x89PNG")
    assert "int8-full" in (directory / "report" / "export.md").read_text()
    assert manifest.labels == tuple(trained["dataset"].labels)
    for report in trained["export"].variants:
        assert report.accepted
        assert report.accuracy_drop <= 0.05


@pytest.mark.parametrize("variant", ["float32", "int8-dynamic", "int8-full"])
def test_every_variant_round_trips_through_the_runtime_backend(trained, variant):
    directory = trained["root"] / "emotion" / "2.0.0"
    manifest = read_manifest(directory / MANIFEST_NAME)
    faces = trained["dataset"].held_out().images[:40]
    reference = KerasPredictor(trained["result"].model).predict(faces)
    model = open_model_files(manifest, variant, BackendKind.LITERT, threads=1, max_batch=16)
    try:
        batch = normalise(faces, manifest.input.normalization)
        served = asyncio.run(model.predict(batch))
    finally:
        model.close()
    assert model.variant == variant
    if variant == "float32":
        np.testing.assert_allclose(served, reference, atol=1e-4)
    else:  # quantised: same decisions, close probabilities
        agreement = float((served.argmax(axis=1) == reference.argmax(axis=1)).mean())
        assert agreement >= 0.9
        assert float(np.abs(served - reference).max()) < 0.25


def test_accuracy_gate_refuses_unless_forced(trained):
    root, dataset = trained["root"], trained["dataset"]
    model = trained["result"].model
    # A negative allowance refuses every variant, however good.
    with pytest.raises(ExportRefused, match="REFUSED"):
        export_and_register(
            model,
            dataset,
            registry=root,
            name="emotion",
            version="2.0.1",
            variants=["float32"],
            max_drop=-0.5,
        )
    assert not (root / "emotion" / "2.0.1").exists()
    forced = export_and_register(
        model,
        dataset,
        registry=root,
        name="emotion",
        version="2.0.1",
        variants=["float32"],
        max_drop=-0.5,
        force=True,
    )
    assert forced.manifest is not None


def test_auto_serves_the_gated_full_int8_file_and_float32_where_there_is_none(
    trained, registry: Path
):
    trained_manifest = read_manifest(trained["root"] / "emotion" / "2.0.0" / MANIFEST_NAME)
    assert trained_manifest.file("auto").variant == "int8-full"
    pretrained = read_manifest(registry / "emotion" / "1.0.0" / MANIFEST_NAME)
    assert pretrained.file("auto").variant == "float32"


@pytest.mark.parametrize("variant", ["float32", "int8-full"])
def test_each_served_file_ships_its_score_percentiles_and_a_rate_holds_on_new_faces(
    trained, variant
):
    """The calibration in the manifest is the file's own: a threshold fitted from it to a rate
    offloads about that share of faces the model never saw (the held-out split)."""
    manifest = read_manifest(trained["root"] / "emotion" / "2.0.0" / MANIFEST_NAME)
    assert manifest.calibration_set == "synthetic:1400:3 (val)"
    entry = manifest.file(variant)
    assert set(entry.offload_scores) == {"margin", "max_prob", "entropy"}
    faces = trained["dataset"].held_out().images
    model = open_model_files(manifest, variant, BackendKind.LITERT, threads=1, max_batch=16)
    try:
        probabilities = asyncio.run(
            model.predict(normalise(faces, manifest.input.normalization))
        ).tolist()
    finally:
        model.close()
    assert model.offload_scores == entry.offload_scores
    unused = random.Random(0)  # noqa: S311 - these policies draw nothing
    for policy in (Policy.MARGIN, Policy.ENTROPY):
        threshold = threshold_at(entry.offload_scores[policy.value], 0.3)
        share = sum(score(policy, row, unused) < threshold for row in probabilities) / len(faces)
        assert share == pytest.approx(0.3, abs=0.1), (policy, share)


def test_the_pretrained_version_is_calibrated_on_the_cameras_faces(registry):
    manifest = read_manifest(registry / "emotion" / "1.0.0" / MANIFEST_NAME)
    assert manifest.calibration_set == "synthetic:2800:7 (val)"
    for variant in ("float32", "int8-dynamic"):
        assert len(manifest.file(variant).offload_scores["margin"]) == 101


def _hard_examples(trained, registry: Path, directory: Path) -> int:
    """Rendered faces 1.0.0 finds hard (smallest margin), labelled by the trained version as
    the cloud would answer them, kept by the intake as the edge uploads them."""
    edge = TfLitePredictor((registry / "emotion" / "1.0.0" / "model.tflite").read_bytes())
    cloud = KerasPredictor(trained["result"].model)
    faces, _ = FaceRenderer(4242).dataset(500, side=64)
    edge_rows, cloud_rows = edge.predict(faces), cloud.predict(faces)
    unused = random.Random(0)  # noqa: S311 - margin draws nothing
    margins = [score(Policy.MARGIN, row, unused) for row in edge_rows.tolist()]
    threshold = sorted(margins)[len(margins) // 2]
    intake = SampleIntake(directory)
    for i, face in enumerate(faces):
        if margins[i] >= threshold:
            continue
        example = samples_pb2.HardExample(
            device_id="cam",
            request_id=str(i),
            pixels=inference_pb2.Tensor(
                shape=[64, 64, 1], dtype=inference_pb2.DATA_TYPE_UINT8, data=face.tobytes()
            ),
            labels=FER_LABELS,
            edge_probabilities=edge_rows[i].tolist(),
            cloud_probabilities=cloud_rows[i].tolist(),
        )
        intake.accept(example.SerializeToString())
    return len(list(directory.glob("*/*.pb")))


def test_retrain_on_the_clouds_labels_beats_the_serving_version_or_registers_nothing(
    trained, registry, tmp_path
):
    """One step of the loop, from the pretrained 1.0.0 (about a third right on rendered faces):
    the hard half of 500 faces, labelled only by the cloud's model, makes a version that is
    better on held-out faces the loop never saw; asked for an impossible gain, nothing."""
    root = trained["root"]
    samples = tmp_path / "samples"
    assert _hard_examples(trained, registry, samples) == 250
    argv = [
        "--registry",
        str(root),
        "retrain",
        "--serving",
        "1.0.0",
        "--samples",
        str(samples),
        "--held-out",
        "synthetic:700",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    impossible = ["--version", "1.0.9", "--min-gain", "1.0", "--epochs", "1"]
    assert cloud_trainer_main([*argv, *impossible]) == 3
    assert not (root / "emotion" / "1.0.9").exists()
    assert cloud_trainer_main([*argv, "--version", "1.0.1", "--epochs", "6"]) == 0
    manifest = read_manifest(root / "emotion" / "1.0.1" / MANIFEST_NAME)
    assert manifest.parent_version == "1.0.0"
    assert manifest.calibration_set == "synthetic:700:99 (val)"
    metrics = json.loads((root / "emotion" / "1.0.1" / MANIFEST_NAME).read_text())["metrics"]
    # The cloud's model is trained in this module and differs by CPU (0.64 here, 0.46 on CI
    # after 4 epochs): ten points on 175 faces is 17 more right, well past chance.
    assert metrics["accuracy"] > metrics["parent_accuracy"] + 0.1, metrics
    assert metrics["hard_examples"] > 100  # the cloud was sure of most of them
