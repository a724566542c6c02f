"""``cloud-trainer loop``'s decisions, with retraining and the twins played by fakes: it waits
for the serving version's own hard examples, promotes a better version through the canary,
keeps the serving one when the candidate is not better or its canary is rolled back, and then
waits for more examples before trying again."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from cloud_trainer import loop
from cloud_trainer.export import ExportResult
from cloud_trainer.push import CanaryPolicy
from cloud_trainer.registry import FER_LABELS
from cloud_trainer.retrain import RetrainPlan, RetrainResult
from cloud_trainer.samples import SampleIntake
from cloud_trainer.training import TrainConfig
from edgeinfer.v1 import inference_pb2, samples_pb2


def keep(intake: SampleIntake, version: str, count: int, start: int) -> None:
    for i in range(start, start + count):
        data = i.to_bytes(4, "big") * 16  # 8x8 distinct faces
        example = samples_pb2.HardExample(
            pixels=inference_pb2.Tensor(
                shape=[8, 8, 1], dtype=inference_pb2.DATA_TYPE_UINT8, data=data
            ),
            labels=FER_LABELS,
            edge_model=inference_pb2.ModelRef(name="emotion", version=version),
            edge_probabilities=[1 / 7] * 7,
        )
        assert intake.accept(example.SerializeToString())[0] == 201


class Twins:
    """One runtime that serves whatever is pushed; it offloads ``rates[version]``."""

    def __init__(self, rates: Mapping[str, str]) -> None:
        self.rates = rates
        self.wanted = {"rt": {"model_version": "1.0.0"}}
        self.served = {"model_version": "1.0.0", "model_status": "serving", "offload_rate": "0.4"}

    def desired(self, device: str) -> dict[str, str]:
        return dict(self.wanted[device])

    def reported(self, _device: str) -> dict[str, str]:
        return dict(self.served)

    def set_desired(self, device: str, values: Mapping[str, str]) -> None:
        self.wanted[device] = dict(values)
        version = values["model_version"]
        rate = self.rates[version]
        self.served = {"model_version": version, "model_status": "serving", "offload_rate": rate}


def test_next_version_skips_what_is_registered(tmp_path: Path) -> None:
    for taken in ("1.0.1", "1.0.2"):
        (tmp_path / "emotion" / taken).mkdir(parents=True)
        (tmp_path / "emotion" / taken / "manifest.json").write_text("{}")
    assert loop.next_version(tmp_path, "emotion", "1.0.0") == "1.0.3"
    assert loop.next_version(tmp_path, "emotion", "2.0.9") == "2.0.10"


def test_cycles_promote_the_better_keep_the_worse_and_roll_back_a_canary_offloading_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = SampleIntake(tmp_path / "samples")
    keep(intake, "1.0.0", 30, 0)
    # The 1st candidate is better, the 2nd is not, the 3rd is better but offloads more.
    accuracies = [0.8, 0.7, 0.9]
    retrained: list[tuple[str, str]] = []

    def fake_retrain(plan: RetrainPlan, _config: TrainConfig, _run: Path) -> RetrainResult:
        retrained.append((plan.serving, plan.version))
        before = {"1.0.0": 0.35, "1.0.1": 0.8}[plan.serving]
        after = accuracies[len(retrained) - 1]
        export = ExportResult(None, (), Path("m")) if after > before else None  # type: ignore[arg-type]
        # Meanwhile the edge sends what the version it serves after this cycle finds hard.
        keep(intake, plan.version if export else plan.serving, 30, 1000 * len(retrained))
        return RetrainResult(plan.serving, before, after, 30, export)

    monkeypatch.setattr(loop, "retrain", fake_retrain)
    monkeypatch.setattr(
        loop, "desired_twins", lambda _r, _n, version, _u: {"model_version": version}
    )
    twins = Twins({"1.0.0": "0.4", "1.0.1": "0.2", "1.0.2": "0.5"})
    plan = RetrainPlan(
        registry=tmp_path, name="emotion", serving="1.0.0", version="", samples=intake.directory,
        held_out=None,  # type: ignore[arg-type]
    )  # fmt: skip
    policy = CanaryPolicy(count=1, timeout_s=5, poll_s=0.01, max_offload_rate_rise=0.05)
    cycles = loop.run(
        plan,
        TrainConfig(),
        loop.Rollout(twins, ["rt"], "http://store", policy),
        cycles=3,
        min_new_examples=30,
        runs=tmp_path / "runs",
        poll_s=0.01,
        timeout_s=5,
        log=lambda _line: None,
    )
    assert [(c.serving, c.candidate, c.outcome.split(":")[0]) for c in cycles] == [
        ("1.0.0", "1.0.1", "promoted"),
        ("1.0.1", "1.0.2", "not better"),
        ("1.0.1", "1.0.2", "rolled back"),
    ]
    assert retrained == [("1.0.0", "1.0.1"), ("1.0.1", "1.0.2"), ("1.0.1", "1.0.2")]
    assert twins.desired("rt") == {"model_version": "1.0.1"}  # the last good one
