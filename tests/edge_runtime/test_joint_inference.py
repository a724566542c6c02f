"""Joint inference against real parts: the cloud is another edge-runtime process answering on
its Open Inference Protocol door; a refused port and a black hole (a socket that accepts and
never answers) are real sockets. Devices talk to the edge over real mosquitto."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import numpy as np
import pytest

from edge_runtime import ModelRef, Request, Source, Status
from edge_runtime.settings import ConfigError
from edgeinfer.hardness import Policy, Rule, threshold_at
from edgeinfer.twins import OFFLOAD_POLICY, OFFLOAD_RATE, RUNTIME_TWINS
from kubeedge_twin import DeviceDefinition, Layout
from tests.support.broker import free_port
from tests.support.devices import device, face
from tests.support.kubeedge import dmi_standin, reported_twins, socket_directory, standin
from tests.support.runtime import make_settings, running_runtime, runtime_process, wait_ready
from tests.support.until import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def cloud_process(
    broker_url: str, registry, name: str, port: int, *extra: str
) -> subprocess.Popen[bytes]:
    """An edge-runtime process as the cloud's inference service, HTTP on loopback ``port``."""
    return runtime_process(
        broker_url,
        registry,
        f"cloud-{name}",
        f"cloud-{name}/v1",
        "--http-port",
        str(port),
        "--http-host",
        "127.0.0.1",
        *extra,
    )


@contextlib.asynccontextmanager
async def cloud_runtime(broker_url: str, registry, unique: str, *extra: str) -> AsyncIterator[str]:
    """An edge-runtime process as the cloud's inference service; yields its base URL."""
    port = free_port()
    process = cloud_process(broker_url, registry, unique, port, *extra)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A port whose kernel completes every connection and whose owner never reads or answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_hard_faces_are_answered_by_the_cloud_runtime(broker, registry, unique) -> None:
    async with cloud_runtime(broker.url, registry, unique) as cloud:
        settings = make_settings(
            broker.url, registry, unique, **{"offload.url": cloud, "offload.policy": "always"}
        )
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await cam.send(Request("r1", "cam", 0, (face(1), face(2))))
            (response,) = await cam.receive(1)
    assert response.status is Status.OK
    for result in response.results:
        assert (result.source, result.hard, result.fallback) == (Source.CLOUD, True, "")
        assert result.model == ModelRef("emotion", "1.0.0")
        assert len(result.probabilities) == 7
        assert result.label  # named with the edge model's labels


async def test_refine_mode_sends_the_cloud_answer_after_the_edge_answer(
    broker, registry, unique
) -> None:
    async with cloud_runtime(broker.url, registry, unique) as cloud:
        settings = make_settings(
            broker.url,
            registry,
            unique,
            **{"offload.url": cloud, "offload.policy": "always", "offload.mode": "refine"},
        )
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await cam.send(Request("r1", "cam", 0, (face(1),)), correlation_data=b"c1")
            first, second = [await cam.responses.get() for _ in range(2)]
    assert [topic for topic, _, _ in (first, second)] == [f"{settings.topic_root}/cam/result"] * 2
    assert first[2] == second[2] == b"c1"  # the same correlation data on both
    edge, refined = first[1], second[1]
    assert edge.request_id == refined.request_id == "r1"
    assert (edge.results[0].source, edge.results[0].hard) == (Source.EDGE, True)
    assert refined.results[0].source is Source.CLOUD


@pytest.mark.parametrize("cloud", ["refused", "black_hole"])
async def test_a_dead_cloud_costs_the_edge_its_budget_then_nothing(
    cloud, broker, registry, unique
) -> None:
    """A refused connection fails at once, a black hole after the budget; after three, the
    breaker is open and hard faces cost nothing. Every request is answered by the edge."""
    with black_hole() as silent:
        url = silent if cloud == "black_hole" else f"http://127.0.0.1:{free_port()}"
        settings = make_settings(
            broker.url,
            registry,
            unique,
            **{
                "offload.url": url,
                "offload.policy": "always",
                "offload.budget_ms": 200,
                "offload.breaker_failures": 3,
                "offload.breaker_open_s": 60.0,
            },
        )
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            answers = []
            for i in range(8):
                await cam.send(Request(f"r{i}", "cam", 0, (face(i),)))
                answers += await cam.receive(1)
    assert [a.status for a in answers] == [Status.OK] * 8  # nothing lost, nothing failed
    fallbacks = [a.results[0].fallback for a in answers]
    first = "timeout" if cloud == "black_hole" else "cloud_error"
    assert fallbacks == [first] * 3 + ["circuit_open"] * 5
    assert all(a.results[0].source is Source.EDGE and a.results[0].hard for a in answers)
    inside_ms = [a.timings.total_us / 1000 for a in answers]  # receipt to answer, runtime side
    assert max(inside_ms[:3]) < 200 + 100  # the budget, and no more
    assert max(inside_ms[3:]) < 50  # an open breaker costs nothing


async def test_the_cloud_door_asks_for_its_token_and_the_edge_sends_it(
    broker, registry, unique, tmp_path
) -> None:
    (tmp_path / "cloud-token").write_text("s3cret\n")
    edge_token = tmp_path / "edge-token"
    async with cloud_runtime(
        broker.url, registry, unique, "--http-token-file", str(tmp_path / "cloud-token")
    ) as cloud:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{cloud}/v2/models/emotion") as reply:
                assert reply.status == 401
            async with session.get(f"{cloud}/readyz") as reply:
                assert reply.status == 200  # probes stay open
        results = {}
        for token in ("s3cret", "wrong"):
            edge_token.write_text(token)
            settings = make_settings(
                broker.url,
                registry,
                f"{unique}-{token}",
                **{
                    "offload.url": cloud,
                    "offload.policy": "always",
                    "offload.token_file": str(edge_token),
                },
            )
            async with (
                running_runtime(settings),
                device(broker.url, settings.topic_root, "cam") as cam,
            ):
                await cam.send(Request("r1", "cam", 0, (face(1),)))
                (response,) = await cam.receive(1)
            results[token] = response.results[0]
    assert results["s3cret"].source is Source.CLOUD
    assert (results["wrong"].source, results["wrong"].fallback) == (Source.EDGE, "cloud_error")


@pytest.mark.parametrize("transport", ["mqtt-1.4", "dmi-1.23"])
async def test_the_offload_rule_follows_the_twin_and_the_rate_is_reported(
    transport, broker, registry, unique, tmp_path
) -> None:
    """``offload_policy`` desired sets the rule; reported, the rule in force (a rate with the
    threshold fitted to the served version's calibration) and ``offload_rate``."""
    overrides: dict[str, object] = {
        "twin.enabled": True,
        "twin.cache_dir": str(tmp_path / "cache"),
        "offload.url": f"http://127.0.0.1:{free_port()}",  # refused: the edge answers
        "offload.breaker_failures": 10_000,
        "offload.report_interval_s": 0.2,
    }
    with contextlib.ExitStack() as stack:
        if transport == "mqtt-1.4":
            settings = make_settings(
                broker.url, registry, unique, **overrides, **{"twin.kubeedge_version": "1.4"}
            )
            device_id = settings.twin_device
            service = stack.enter_context(standin(broker, Layout.V1_4, device_id))
        else:
            sockets = stack.enter_context(socket_directory())
            settings = make_settings(
                broker.url,
                registry,
                unique,
                **overrides,
                **{
                    "twin.kubeedge_version": "1.23",
                    "dmi.edgecore_socket": str(sockets),
                    "dmi.socket": str(sockets / "edgeinfer.sock"),
                },
            )
            device_id = f"default/{settings.twin_device}"
            definition = DeviceDefinition(
                settings.twin_device,
                desired={n: ("", "string") for n in RUNTIME_TWINS},
                protocol="edgeinfer",
            )
            service = stack.enter_context(
                dmi_standin(broker, sockets, f"standin-{unique}", definition)
            )

        def reported(name: str) -> str:
            return reported_twins(service, device_id).get(name, "")

        async with (
            running_runtime(settings) as runtime,
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await until(lambda: reported(OFFLOAD_POLICY) == "margin,threshold:0.3")
            service.set_desired(device_id, {OFFLOAD_POLICY: "margin,rate:0.5"})
            percentiles = runtime.model.offload_scores["margin"]  # 1.0.0 ships them
            fitted = Rule(Policy.MARGIN, threshold_at(percentiles, 0.5), 0.5)
            await until(lambda: reported(OFFLOAD_POLICY) == str(fitted))
            service.set_desired(device_id, {OFFLOAD_POLICY: "always"})
            await until(lambda: reported(OFFLOAD_POLICY).startswith("always"))
            await cam.send(Request("r1", "cam", 0, (face(1), face(2))))
            (answer,) = await cam.receive(1)
            await until(lambda: reported(OFFLOAD_RATE) == "1.0000")
    assert all(r.hard and r.fallback == "cloud_error" for r in answer.results)


async def test_the_clouds_runtime_needs_no_broker(broker, registry, unique) -> None:
    """In the cloud the inference service is only its HTTP doors (mqtt.broker empty): ready
    without a broker, and the edge's hard faces are answered by it."""
    port = free_port()
    cloud_settings = make_settings(
        "",
        registry,
        f"cloud-{unique}",
        **{"mqtt.broker": "", "http.port": port, "http.host": "127.0.0.1"},
    )
    async with running_runtime(cloud_settings) as cloud:
        assert cloud.ready
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        settings = make_settings(
            broker.url, registry, unique, **{"offload.url": base, "offload.policy": "always"}
        )
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            await cam.send(Request("r1", "cam", 0, (face(1),)))
            (response,) = await cam.receive(1)
    assert response.results[0].source is Source.CLOUD
    with pytest.raises(ConfigError, match=r"needs http\.port"):
        make_settings("", registry, unique, **{"mqtt.broker": "", "http.port": 0})
    with pytest.raises(ConfigError, match="twin over MQTT"):
        make_settings(
            "",
            registry,
            unique,
            **{"mqtt.broker": "", "http.port": port, "twin.enabled": True},
        )


async def test_replicas_behind_the_clouds_service_answer_alike(registry, unique) -> None:
    """Two replicas of the cloud's service (their own processes, one pinned version): the same
    faces, alone or in another batch, get the same answers from either."""
    from edge_runtime.offload.cloud import CloudModel

    faces = [face(i).pixels for i in range(8)]
    answers = []
    for replica in ("a", "b"):
        port = free_port()
        process = cloud_process("", registry, f"{replica}-{unique}", port)
        try:
            await wait_ready(f"http://127.0.0.1:{port}")
            cloud = CloudModel(f"http://127.0.0.1:{port}", "emotion")
            try:
                together, model = await cloud.infer(faces)
                alone = [(await cloud.infer([f]))[0][0] for f in faces[:3]]
            finally:
                await cloud.close()
        finally:
            process.terminate()
            process.wait(15)
        answers.append((together, alone, model))
    (a_rows, a_alone, a_model), (b_rows, b_alone, b_model) = answers
    assert a_model == b_model == ModelRef("emotion", "1.0.0")
    np.testing.assert_allclose(a_rows, b_rows, atol=1e-6)
    np.testing.assert_allclose(a_alone, b_alone, atol=1e-6)
    np.testing.assert_allclose(a_rows[:3], a_alone, atol=1e-5)  # the batch changes nothing
    assert [max(range(7), key=r.__getitem__) for r in a_rows] == [
        max(range(7), key=r.__getitem__) for r in b_rows
    ]


@contextlib.contextmanager
def slow_cloud(delay_s: float) -> Iterator[str]:
    """A real HTTP server that answers every request after ``delay_s`` (too late to matter)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(delay_s)
            self.send_error(503)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_slow_cloud_and_a_cloud_killed_mid_run_cost_no_answer(
    broker, registry, unique
) -> None:
    """A cloud answering after 2 s costs each hard face the budget until the breaker opens; a
    cloud runtime killed (SIGKILL) while the edge offloads to it costs nothing but its
    answers: every request is answered OK, by the cloud while it lives, then by the edge."""
    offload = {"offload.policy": "always", "offload.budget_ms": 200}
    offload |= {"offload.breaker_failures": 2, "offload.breaker_open_s": 60.0}
    with slow_cloud(2.0) as url:
        settings = make_settings(broker.url, registry, unique, **{"offload.url": url, **offload})
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            slow = []
            for i in range(4):
                await cam.send(Request(f"s{i}", "cam", 0, (face(i),)))
                slow += await cam.receive(1)
    assert [a.results[0].fallback for a in slow] == ["timeout"] * 2 + ["circuit_open"] * 2
    assert max(a.timings.total_us for a in slow) / 1000 < 200 + 100

    port = free_port()
    cloud = cloud_process(broker.url, registry, unique, port)
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        settings = make_settings(
            broker.url,
            registry,
            f"k{unique}",
            **{"offload.url": f"http://127.0.0.1:{port}", **offload},
        )
        async with (
            running_runtime(settings),
            device(broker.url, settings.topic_root, "cam") as cam,
        ):
            killed = []
            for i in range(8):
                if i == 3:
                    cloud.kill()
                    cloud.wait(10)
                await cam.send(Request(f"k{i}", "cam", 0, (face(i),)))
                killed += await cam.receive(1)
    finally:
        if cloud.poll() is None:
            cloud.kill()
            cloud.wait(10)
    assert [a.status for a in killed] == [Status.OK] * 8
    sources = [a.results[0].source for a in killed]
    assert sources[:3] == [Source.CLOUD] * 3
    assert sources[3:] == [Source.EDGE] * 5
    assert [a.results[0].fallback for a in killed[3:]] == ["cloud_error"] * 2 + ["circuit_open"] * 3
