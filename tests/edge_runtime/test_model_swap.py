"""Model versions through KubeEdge device twins: desired → fetched → served → reported."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path

import pytest

from cloud_trainer.push import desired_twins
from cloud_trainer.registry import ArtefactFile, register
from cloud_trainer.store import ModelStore
from edge_runtime import Request, Status
from edge_runtime.__main__ import _startup_model
from edgeinfer.twins import RUNTIME_TWINS
from kubeedge_sim.dmi_edgecore import DmiEdgecore
from kubeedge_twin import DeviceDefinition, Layout
from tests.support.devices import device, face
from tests.support.kubeedge import (
    crd_schema,
    dmi_standin,
    reported_twins,
    socket_directory,
    standin,
)
from tests.support.runtime import make_settings, running_runtime
from tests.support.until import until

pytestmark = pytest.mark.integration


def _register_copy(source: Path, root: Path, version: str, **kw) -> None:
    files = [ArtefactFile(source / "model.tflite", "model.tflite", "tflite", "float32")]
    register(root, name="emotion", version=version, files=files, height=64, width=64, **kw)


@pytest.fixture(scope="module")
def swap_registry(registry, tmp_path_factory) -> Path:
    """Registry with 1.0.0, 1.1.0, 1.2.0 (same weights) and deliberately broken versions."""
    root = tmp_path_factory.mktemp("swap-registry")
    shutil.copytree(registry / "emotion" / "1.0.0", root / "emotion" / "1.0.0")
    source = root / "emotion" / "1.0.0"
    _register_copy(source, root, "1.1.0")
    _register_copy(source, root, "1.2.0")
    _register_copy(source, root, "9.0.0")  # corrupted below: checksum mismatch
    (root / "emotion" / "9.0.0" / "model.tflite").write_bytes(b"tampered")
    garbage = root / "garbage.tflite"
    garbage.write_bytes(b"this is not a flatbuffer" * 10)
    register(
        root,
        name="emotion",
        version="9.0.1",
        height=64,
        width=64,
        files=[ArtefactFile(garbage, "model.tflite", "tflite", "float32")],
    )
    _register_copy(source, root, "9.0.2", labels=("a", "b", "c", "d", "e"))  # wrong outputs
    return root


@pytest.fixture(scope="module")
def store(swap_registry):
    server = ModelStore(swap_registry)
    server.start()
    yield server
    server.stop()


def _device_id(layout: Layout, name: str) -> str:
    return name if layout is Layout.V1_4 else f"default/{name}"


async def _until(service, device_id, done) -> dict[str, str]:
    await until(lambda: done(reported_twins(service, device_id)), 20, interval_s=0.02)
    return reported_twins(service, device_id)


async def _until_reported(service, device_id, **expected: str) -> dict[str, str]:
    return await _until(
        service, device_id, lambda r: all(r.get(k) == v for k, v in expected.items())
    )


async def _until_failed(service, device_id) -> dict[str, str]:
    return await _until(
        service, device_id, lambda r: r.get("model_status", "").startswith("failed:")
    )


def _settings(broker, registry, unique, tmp_path, layout=Layout.V1_4, **extra):
    return make_settings(
        broker.url,
        registry,
        unique,
        **{
            "twin.enabled": True,
            "twin.layout": layout.value,
            "twin.cache_dir": str(tmp_path / "cache"),
            "model.version": "1.0.0",
            **extra,
        },
    )


@pytest.mark.parametrize("layout", [Layout.V1_4, Layout.V1_17])
async def test_desired_version_is_fetched_served_and_reported(
    broker, swap_registry, store, unique, tmp_path, layout
):
    settings = _settings(broker, swap_registry, unique, tmp_path, layout)
    device_id = _device_id(layout, settings.twin_device)
    spy_topic = "$hw/events/device/#"
    with standin(broker, layout, settings.twin_device) as service:
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam", (spy_topic,)) as cam,
        ):
            await _until_reported(service, device_id, model_version="1.0.0", model_status="serving")
            wanted = desired_twins(swap_registry, "emotion", "1.1.0", store.url)
            service.set_desired(device_id, wanted)
            reported = await _until_reported(
                service, device_id, model_version="1.1.0", model_status="serving"
            )
            await cam.send(Request("after-swap", "cam", 0, (face(1),)))
            (response,) = await cam.receive(1)
            spied = []
            while not cam.other.empty():
                spied.append(cam.other.get_nowait())
    assert response.model is not None
    assert response.model.version == "1.1.0"
    assert reported["model_uri"] == wanted["model_uri"]
    assert reported["model_sha256"] == wanted["model_sha256"]
    updates = [m for m in spied if m.topic.endswith("/twin/update")]
    assert updates, "the runtime reported nothing"
    for message in updates:
        for twin in json.loads(message.payload)["twin"].values():
            assert "expected" not in twin  # edges only ever report actual (SPEC §2.3)


async def test_newer_desired_supersedes_a_version_still_loading(
    broker, swap_registry, store, unique, tmp_path
):
    settings = _settings(broker, swap_registry, unique, tmp_path)
    device_id = settings.twin_device
    with standin(broker, Layout.V1_4, settings.twin_device) as service:
        async with (
            running_runtime(settings) as runtime,
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await _until_reported(service, device_id, model_version="1.0.0", model_status="serving")
            service.set_desired(
                device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url)
            )
            # A model load takes several 50 ms serving pauses: 1.2.0 arrives while 1.1.0 loads.
            await _until_reported(service, device_id, model_status="loading")
            service.set_desired(
                device_id, desired_twins(swap_registry, "emotion", "1.2.0", store.url)
            )
            await _until_reported(service, device_id, model_version="1.2.0", model_status="serving")
            await cam.send(Request("after", "cam", 0, (face(1),)))
            (response,) = await cam.receive(1)
            registry = runtime.metrics.registry
            swaps = {
                result: registry.get_sample_value("edge_model_swaps_total", {"result": result})
                for result in ("ok", "failed")
            }
    assert response.model is not None
    assert response.model.version == "1.2.0"
    assert swaps == {"ok": 1.0, "failed": None}  # 1.1.0 was loaded, then dropped unserved


@pytest.mark.parametrize("kubeedge", ["1.4", "1.23"], ids=["mqtt-1.4", "dmi-1.23"])
async def test_swap_under_load_fails_and_loses_nothing(
    broker, swap_registry, store, unique, tmp_path, kubeedge
):
    devices = 8
    after_swap = 20
    with contextlib.ExitStack() as scope:
        if kubeedge == "1.4":
            settings = _settings(broker, swap_registry, unique, tmp_path)
            device_id = settings.twin_device
            service = scope.enter_context(standin(broker, Layout.V1_4, device_id))
        else:
            sockets = scope.enter_context(socket_directory())
            settings = _dmi_settings(broker, swap_registry, unique, tmp_path, sockets)
            device_id = f"default/{settings.twin_device}"
            service = scope.enter_context(
                dmi_standin(broker, sockets, f"standin-{unique}", _runtime_device(settings))
            )
        async with running_runtime(settings), contextlib.AsyncExitStack() as stack:
            cams = [
                await stack.enter_async_context(device(broker.url, settings.topic_root, f"d{i}"))
                for i in range(devices)
            ]
            await _until_reported(service, device_id, model_status="serving")

            swapped = asyncio.Event()

            async def load(cam) -> list:
                # Each device keeps a request in flight until the swap is reported, and after.
                answers, sent, extra = [], 0, 0
                while extra < after_swap:
                    await cam.send(Request(f"{cam.name}-{sent}", cam.name, 0, (face(sent),)))
                    sent += 1
                    answers.extend(await cam.receive(1, timeout_s=20))
                    extra += swapped.is_set()
                return answers

            async def push_midway() -> None:
                await asyncio.sleep(0.3)  # load runs until the swap is done, so any moment works
                service.set_desired(
                    device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url)
                )
                await _until_reported(service, device_id, model_version="1.1.0")
                swapped.set()

            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(load(cam)) for cam in cams]
                tg.create_task(push_midway())
    results = [task.result() for task in tasks]
    for answers in results:
        assert len(answers) > after_swap
        assert all(r.status is Status.OK for r in answers)
        versions = [r.model.version for r in answers]
        first_new = versions.index("1.1.0") if "1.1.0" in versions else len(versions)
        assert set(versions[:first_new]) <= {"1.0.0"}
        assert set(versions[first_new:]) <= {"1.1.0"}  # old → new exactly once
    for answers in results:
        versions = [r.model.version for r in answers]
        assert versions[0] == "1.0.0"
        assert versions[-1] == "1.1.0"


BROKEN = {
    "checksum": ("9.0.0", None, "sha256_mismatch"),
    "corrupt-file": ("9.0.1", None, "TFLite_cannot_load"),
    "wrong-outputs": ("9.0.2", None, "output_shape"),
    "unreachable": ("1.1.0", "http://127.0.0.1:9/emotion/1.1.0/manifest.json", "cannot_fetch"),
    "version-mismatch": ("7.7.7", "1.0.0", "manifest_is_version_1.0.0"),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_bad_model_keeps_old_serving_and_reports_why(
    broker, swap_registry, store, unique, tmp_path, case
):
    version, uri, reason = BROKEN[case]
    settings = _settings(broker, swap_registry, unique, tmp_path)
    device_id = settings.twin_device
    if case == "version-mismatch":
        wanted = desired_twins(swap_registry, "emotion", "1.0.0", store.url)
        wanted["model_version"] = version
    else:
        wanted = desired_twins(swap_registry, "emotion", version, store.url)
        if uri:
            wanted["model_uri"] = uri
    with standin(broker, Layout.V1_4, device_id) as service:
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await _until_reported(service, device_id, model_status="serving")
            service.set_desired(device_id, wanted)
            reported = await _until_failed(service, device_id)
            await cam.send(Request("still", "cam", 0, (face(2),)))
            (response,) = await cam.receive(1)
            # The next desired change is still honoured.
            service.set_desired(
                device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url)
            )
            await _until_reported(service, device_id, model_version="1.1.0", model_status="serving")
    assert reported["model_version"] == "1.0.0"
    assert reason in reported["model_status"]
    assert response.status is Status.OK
    assert response.model.version == "1.0.0"


async def test_desired_change_while_down_is_applied_after_restart_and_cached(
    broker, swap_registry, store, unique, tmp_path
):
    settings = _settings(broker, swap_registry, unique, tmp_path)
    device_id = settings.twin_device
    with standin(broker, Layout.V1_4, device_id) as service:
        async with running_runtime(settings):
            await _until_reported(service, device_id, model_status="serving")
        service.set_desired(device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url))
        async with running_runtime(settings) as runtime:
            await _until_reported(service, device_id, model_version="1.1.0", model_status="serving")
            assert runtime.model.ref.version == "1.1.0"
    # A restart serves the cached last good version before any broker is reachable.
    offline = _settings(
        broker, swap_registry, unique, tmp_path, **{"mqtt.broker": "mqtt://127.0.0.1:9"}
    )
    model, served = _startup_model(offline)
    try:
        assert model.ref.version == "1.1.0"
        assert served is not None
        assert served.version == "1.1.0"
    finally:
        model.close()


def _keypair(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    public = tmp_path / "trusted.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


async def test_signed_manifest_is_served_and_bad_signature_refused(
    broker, swap_registry, unique, tmp_path
):
    private, public = _keypair(tmp_path)
    settings = _settings(
        broker, swap_registry, unique, tmp_path, **{"twin.trusted_key_file": str(public)}
    )
    device_id = settings.twin_device
    # file:// URIs work as well as the HTTP store.
    base = (swap_registry).as_uri()
    wanted = desired_twins(swap_registry, "emotion", "1.1.0", base)
    manifest = (swap_registry / "emotion" / "1.1.0" / "manifest.json").read_bytes()
    forged = dict(wanted, model_signature=private.sign(b"something else").hex())
    with standin(broker, Layout.V1_4, device_id) as service:
        async with running_runtime(settings):
            await _until_reported(service, device_id, model_status="serving")
            service.set_desired(device_id, forged)
            refused = await _until_failed(service, device_id)
            service.set_desired(
                device_id, dict(wanted, model_signature=private.sign(manifest).hex())
            )
            served = await _until_reported(
                service, device_id, model_version="1.1.0", model_status="serving"
            )
    assert refused["model_status"] == "failed:signature_invalid"
    assert refused["model_version"] == "1.0.0"
    assert served["model_uri"].startswith("file://")


async def test_switching_back_to_a_cached_version_needs_no_store(
    broker, swap_registry, store, unique, tmp_path
):
    settings = _settings(broker, swap_registry, unique, tmp_path)
    device_id = settings.twin_device
    old = desired_twins(swap_registry, "emotion", "1.0.0", store.url)
    new = desired_twins(swap_registry, "emotion", "1.1.0", store.url)
    with standin(broker, Layout.V1_4, device_id) as service:
        async with running_runtime(settings) as runtime:
            for wanted in (old, new):
                service.set_desired(device_id, wanted)
                await _until_reported(
                    service,
                    device_id,
                    model_version=wanted["model_version"],
                    model_sha256=wanted["model_sha256"],
                    model_status="serving",
                )
            # Both versions are cached now; the store's URL is unreachable from here on.
            back = dict(old, model_uri=old["model_uri"].replace(store.url, "http://127.0.0.1:9"))
            service.set_desired(device_id, back)
            await _until_reported(service, device_id, model_version="1.0.0", model_status="serving")
            assert runtime.model.ref.version == "1.0.0"


@pytest.fixture
def dmi_dir():
    with socket_directory() as directory:
        yield directory


def _runtime_device(settings) -> DeviceDefinition:
    return DeviceDefinition(
        settings.twin_device,
        desired={n: ("", "string") for n in RUNTIME_TWINS},
        protocol="edgeinfer",
    )


def _dmi_settings(broker, swap_registry, unique, tmp_path, dmi_dir):
    return _settings(
        broker,
        swap_registry,
        unique,
        tmp_path,
        layout=Layout.V1_17,
        **{
            "twin.transport": "dmi",
            "dmi.edgecore_socket": str(dmi_dir),  # a directory, as edgecore 1.23 has it
            "dmi.socket": str(dmi_dir / "edgeinfer.sock"),
        },
    )


async def test_over_dmi_desired_is_fetched_served_and_reported_and_a_bad_one_refused(
    broker, swap_registry, store, unique, tmp_path, dmi_dir
):
    """KubeEdge 1.15+: the push reaches the runtime only over DMI (UpdateDevice), never as an
    MQTT delta; the runtime reports through ReportDeviceStatus."""
    settings = _dmi_settings(broker, swap_registry, unique, tmp_path, dmi_dir)
    device_id = f"default/{settings.twin_device}"
    with dmi_standin(
        broker, dmi_dir, f"standin-dmi-{unique}", _runtime_device(settings)
    ) as service:
        async with (
            running_runtime(settings) as runtime,
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await _until_reported(service, device_id, model_status="serving")
            service.set_desired(
                device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url)
            )
            served = await _until_reported(
                service, device_id, model_version="1.1.0", model_status="serving"
            )
            await cam.send(Request("after-push", "cam", 0, (face(1),)))
            (response,) = await cam.receive(1)
            service.set_desired(
                device_id, desired_twins(swap_registry, "emotion", "9.0.0", store.url)
            )
            refused = await _until_failed(service, device_id)
            serving = runtime.model.ref.version
            assert service.dmi is not None
            status = service.dmi.device_status(device_id)
    assert served["model_version"] == "1.1.0"
    assert response.model is not None
    assert response.model.version == "1.1.0"
    assert refused["model_status"] == "failed:sha256_mismatch_for_model.tflite"
    assert serving == "1.1.0"
    assert "UpdateDevice" in service.dmi.calls
    # What cloudcore 1.23 makes of the reports: a DeviceStatus valid against KubeEdge's CRD.
    import jsonschema

    jsonschema.validate(status, crd_schema("DeviceStatus", "v1beta1"))
    reported = {t["propertyName"]: t["reported"]["value"] for t in status["status"]["twins"]}
    assert reported["model_version"] == "1.1.0"
    assert reported["model_status"] == "failed:sha256_mismatch_for_model.tflite"


async def test_over_dmi_restarts_of_the_runtime_and_of_edgecore_resync(
    broker, swap_registry, store, unique, tmp_path, dmi_dir
):
    """A restarted runtime registers again and gets its Device (with the desired version) in
    the registration's answer; after an edgecore restart it registers again on its own and a
    change made meanwhile arrives."""
    settings = _dmi_settings(broker, swap_registry, unique, tmp_path, dmi_dir)
    device_id = f"default/{settings.twin_device}"
    with dmi_standin(
        broker, dmi_dir, f"standin-dmi-{unique}", _runtime_device(settings)
    ) as service:
        async with running_runtime(settings):
            await _until_reported(service, device_id, model_status="serving")
            service.set_desired(
                device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url)
            )
            await _until_reported(service, device_id, model_version="1.1.0", model_status="serving")
        async with running_runtime(settings) as runtime:  # starts on 1.0.0 (no cache lookup)
            await _until(service, device_id, lambda _r: runtime.model.ref.version == "1.1.0")
            assert service.dmi is not None
            service.dmi.stop()  # edgecore restarts; the cloud pushes 1.2.0 while it is down
            restarted = DmiEdgecore(service.engine, service.dmi.socket, service._send)
            restarted.add_device(
                device_id,
                settings.twin_device,
                "default",
                "edgeinfer",
                desired_twins(swap_registry, "emotion", "1.2.0", store.url),
            )
            service.dmi = restarted
            restarted.start()
            await _until_reported(service, device_id, model_version="1.2.0", model_status="serving")
    assert "MapperRegister" in restarted.calls  # registered again (reports need no registration)


async def test_swap_under_http_load_fails_nothing(broker, swap_registry, store, unique, tmp_path):
    """The app's requests keep coming while a push swaps the model: every one answered 200,
    each naming the version that answered it, old then new, never back."""
    from tests.support.http import APP_PATH, app_body, astronaut_face_rgb, http_runtime

    body = app_body(astronaut_face_rgb())
    twin = {
        "twin.enabled": True,
        "twin.layout": Layout.V1_4.value,
        "twin.cache_dir": str(tmp_path / "cache"),
    }
    with standin(broker, Layout.V1_4, f"emotion-runtime-rt-{unique}") as service:
        async with http_runtime(broker.url, swap_registry, unique, **twin) as http:
            device_id = http.settings.twin_device
            await _until_reported(service, device_id, model_status="serving")
            swapped = asyncio.Event()

            async def app() -> list[tuple[int, str]]:
                answers, after = [], 0
                while after < 10:
                    status, _, headers = await http.call("POST", APP_PATH, body)
                    answers.append((status, headers.get("X-Edge-Model-Version", "")))
                    after += swapped.is_set()
                return answers

            async def push() -> None:
                await asyncio.sleep(0.3)
                service.set_desired(
                    device_id, desired_twins(swap_registry, "emotion", "1.1.0", store.url)
                )
                await _until_reported(service, device_id, model_version="1.1.0")
                swapped.set()

            async with asyncio.TaskGroup() as tg:
                workers = [tg.create_task(app()) for _ in range(6)]
                tg.create_task(push())
    for worker in workers:
        answers = worker.result()
        assert all(status == 200 for status, _ in answers)
        versions = [version for _, version in answers]
        assert versions[0] == "1.0.0"
        assert versions[-1] == "1.1.0"
        first_new = versions.index("1.1.0")
        assert set(versions[first_new:]) == {"1.1.0"}
