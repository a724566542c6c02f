"""The sample intake (``cloud-trainer serve --samples``) and ``cloud-trainer samples``: what is
taken, what is refused and why, and the labelled data set the loop trains on."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cloud_trainer.__main__ import main
from cloud_trainer.data import load_image_folder
from cloud_trainer.registry import FER_LABELS
from cloud_trainer.samples import SampleIntake, read_samples
from cloud_trainer.store import ModelStore
from edgeinfer.v1 import inference_pb2, samples_pb2

TOKEN = "t0ken"  # noqa: S105 - a test token


def example(gray: int, cloud: int | None = 3, confidence: float = 0.95) -> bytes:
    pixels = np.full((64, 64, 1), gray, np.uint8)
    edge = [1 / 7] * 7
    message = samples_pb2.HardExample(
        device_id="cam-1",
        request_id=f"r{gray}",
        pixels=inference_pb2.Tensor(
            shape=[64, 64, 1], dtype=inference_pb2.DATA_TYPE_UINT8, data=pixels.tobytes()
        ),
        labels=FER_LABELS,
        edge_model=inference_pb2.ModelRef(name="emotion", version="1.0.0"),
        edge_probabilities=edge,
    )
    if cloud is not None:
        row = [(1 - confidence) / 6] * 7
        row[cloud] = confidence
        message.cloud_probabilities.extend(row)
        message.cloud_model.version = "1.1.0"
    else:
        message.fallback = "timeout"
    return message.SerializeToString()


def post(url: str, body: bytes, token: str = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/v1/samples",
        data=body,
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def intake(tmp_path: Path):
    store = ModelStore(
        tmp_path / "registry",
        intake=SampleIntake(tmp_path / "samples", token=TOKEN, max_bytes=64 * 1024),
    )
    store.start()
    yield store.url, tmp_path / "samples"
    store.stop()


def test_the_intake_keeps_one_copy_per_face_and_refuses_what_it_cannot_use(intake) -> None:
    url, directory = intake
    assert post(url, example(1)) == (201, hashlib.sha256(bytes([1]) * 4096).hexdigest() + "\n")
    assert post(url, example(1))[0] == 200  # the same face again: kept already
    assert post(url, example(1), token="wrong")[0] == 401  # noqa: S106
    assert post(url, b"\xff not protobuf")[0] == 400
    broken = samples_pb2.HardExample.FromString(example(2))
    broken.pixels.data = broken.pixels.data[:100]
    status, text = post(url, broken.SerializeToString())
    assert (status, "pixel bytes" in text) == (400, True)
    assert post(url, b"x" * (64 * 1024 + 1))[0] == 413
    assert [s.sha256[:8] for s in read_samples(directory)] == [
        hashlib.sha256(bytes([1]) * 4096).hexdigest()[:8]
    ]


def test_a_full_intake_says_so(tmp_path: Path) -> None:
    intake = SampleIntake(tmp_path, quota_bytes=6000)
    assert intake.accept(example(1))[0] == 201
    assert intake.accept(example(2))[0] == 507


def test_samples_list_sheet_and_export_label_from_the_cloud_or_a_human(
    intake, tmp_path: Path, capsys
) -> None:
    url, directory = intake
    post(url, example(1, cloud=3))  # happy, 0.95: labelled by the cloud
    post(url, example(2, cloud=4, confidence=0.5))  # unsure cloud: left out
    post(url, example(3, cloud=None))  # no cloud answer: left out...
    unsure = hashlib.sha256(bytes([3]) * 4096).hexdigest()
    corrections = tmp_path / "corrections.csv"
    corrections.write_text(f"sha256,label\n{unsure},surprise\n")  # ...unless a human says
    assert main(["samples", "list", "--samples", str(directory)]) == 0
    listed = capsys.readouterr().out
    assert "3 hard examples" in listed
    assert "labelled (corrections, or the cloud at >= 0.9): 1" in listed
    sheet = tmp_path / "sheet.png"
    assert main(["samples", "sheet", "--samples", str(directory), "--out", str(sheet)]) == 0
    assert sheet.read_bytes().startswith(b"\x89PNG")
    out = tmp_path / "hard-faces"
    argv = ["samples", "export", "--samples", str(directory), "--out", str(out)]
    assert main([*argv, "--corrections", str(corrections)]) == 0
    assert sorted(p.parent.name for p in out.glob("train/*/*.png")) == ["happy", "surprise"]
    data = load_image_folder(out)  # what `train --data <out>` reads
    assert sum(len(split) for split in data.splits.values()) == 2
