"""Hard examples as training data, end to end: a consenting camera's hard faces reach the
trainer's intake (a real ``cloud-trainer serve`` store on loopback) with the cloud's answer;
nothing of a camera that did not consent is kept; an intake that is down costs nothing but disk,
within the quota, and gets everything once it is back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from cloud_trainer.samples import SampleIntake, read_samples
from cloud_trainer.store import ModelStore
from edge_runtime import Request, Source, Status
from tests.edge_runtime.test_joint_inference import cloud_runtime
from tests.support.broker import free_port
from tests.support.devices import device, face
from tests.support.runtime import make_settings, running_runtime
from tests.support.until import until

TOKEN = "intake-secret"  # noqa: S105 - a test token


def _sample(runtime, result: str) -> float:
    value = runtime.metrics.registry.get_sample_value("edge_samples_total", {"result": result})
    return value or 0.0


def _settings(
    broker, registry, unique, tmp_path: Path, offload_url: str, intake_url: str, **extra: object
):
    token_file = tmp_path / "intake.token"
    token_file.write_text(TOKEN + "\n")
    return make_settings(
        broker.url,
        registry,
        unique,
        **{
            "offload.url": offload_url,
            "offload.policy": "always",
            "offload.breaker_failures": 10_000,
            "samples.url": intake_url,
            "samples.dir": str(tmp_path / "spool"),
            "samples.token_file": str(token_file),
            **extra,
        },
    )


async def test_consented_hard_faces_reach_the_intake_with_the_clouds_answer(
    broker, registry, unique, tmp_path
) -> None:
    intake = SampleIntake(tmp_path / "intake", token=TOKEN)
    store = ModelStore(registry, intake=intake)
    store.start()
    try:
        async with cloud_runtime(broker.url, registry, unique) as cloud:
            settings = _settings(broker, registry, unique, tmp_path, cloud, store.url)
            async with (
                running_runtime(settings) as runtime,
                device(broker.url, settings.topic_root, "consents") as consents,
                device(broker.url, settings.topic_root, "private") as private,
            ):
                faces = (face(1), face(2))
                await consents.send(Request("c1", "consents", 1234, faces, True))
                await consents.send(Request("c2", "consents", 1235, (face(1),), True))
                await private.send(Request("p1", "private", 0, (face(3),)))
                answers = [*await consents.receive(2), *await private.receive(1)]
                await until(lambda: _sample(runtime, "uploaded") == 2)
                spool_left = list((tmp_path / "spool").glob("*.pb"))
                counted = {r: _sample(runtime, r) for r in ("kept", "duplicate", "uploaded")}
    finally:
        store.stop()
    assert all(a.status is Status.OK for a in answers)
    assert all(r.source is Source.CLOUD for a in answers for r in a.results)
    assert counted == {"kept": 2, "duplicate": 1, "uploaded": 2}  # face 1 twice: one copy
    assert spool_left == []
    kept = {s.sha256: s for s in read_samples(tmp_path / "intake")}
    assert set(kept) == {hashlib.sha256(face(i).pixels.tobytes()).hexdigest() for i in (1, 2)}
    example = kept[hashlib.sha256(face(2).pixels.tobytes()).hexdigest()].example
    assert (example.device_id, example.request_id, example.face_index) == ("consents", "c1", 1)
    assert example.captured_at_ms == 1234
    assert example.cloud_model.version == "1.0.0"
    assert len(example.cloud_probabilities) == len(example.labels) == 7
    assert len(example.edge_probabilities) == 7
    assert example.fallback == ""
    assert example.rule == "always,threshold:0.3"
    np.testing.assert_array_equal(
        kept[hashlib.sha256(face(2).pixels.tobytes()).hexdigest()].face, face(2).pixels
    )


async def test_an_intake_that_is_down_gets_everything_when_it_is_back_within_the_quota(
    broker, registry, unique, tmp_path
) -> None:
    """The cloud refuses too: the examples carry fallback cloud_error and no cloud answer."""
    port = free_port()
    settings = _settings(
        broker,
        registry,
        unique,
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        f"http://127.0.0.1:{port}",
    )
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "cam") as cam,
    ):
        for i in range(3):
            await cam.send(Request(f"r{i}", "cam", 0, (face(10 + i),), True))
            await cam.receive(1)
        assert _sample(runtime, "kept") == 3
        assert len(list((tmp_path / "spool").glob("*.pb"))) == 3  # waiting on disk
        intake = SampleIntake(tmp_path / "intake", token=TOKEN)
        store = ModelStore(registry, port=port, intake=intake)
        store.start()
        try:
            await until(lambda: _sample(runtime, "uploaded") == 3, timeout_s=60)
        finally:
            store.stop()
    kept = list(read_samples(tmp_path / "intake"))
    assert len(kept) == 3
    assert {s.example.fallback for s in kept} == {"cloud_error"}
    assert all(not s.example.cloud_probabilities for s in kept)


async def test_beyond_the_quota_new_examples_are_dropped_and_counted(
    broker, registry, unique, tmp_path
) -> None:
    one_example_mb = 5_000 / (1024 * 1024)  # a 64x64 face and its answers: about 4.2 KB
    settings = _settings(
        broker,
        registry,
        unique,
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        f"http://127.0.0.1:{free_port()}",  # never up
        **{"samples.quota_mb": 2 * one_example_mb},
    )
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "cam") as cam,
    ):
        for i in range(4):
            await cam.send(Request(f"r{i}", "cam", 0, (face(20 + i),), True))
            answer = await cam.receive(1)
            assert answer[0].status is Status.OK  # a full disk costs the device nothing
        counted = {r: _sample(runtime, r) for r in ("kept", "dropped_quota")}
        waiting = runtime.metrics.registry.get_sample_value("edge_samples_waiting_bytes")
    assert counted == {"kept": 2, "dropped_quota": 2}
    assert waiting is not None
    assert 0 < waiting <= 2 * 5_000


async def test_without_an_intake_nothing_is_kept_even_with_consent(
    broker, registry, unique
) -> None:
    settings = make_settings(
        broker.url,
        registry,
        unique,
        **{"offload.url": f"http://127.0.0.1:{free_port()}", "offload.policy": "always"},
    )
    async with (
        running_runtime(settings) as runtime,
        device(broker.url, settings.topic_root, "cam") as cam,
    ):
        await cam.send(Request("r1", "cam", 0, (face(1),), True))
        await cam.receive(1)
        assert _sample(runtime, "kept") == 0
