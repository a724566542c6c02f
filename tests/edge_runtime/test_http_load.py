"""HTTP and MQTT through one batcher, and overload over HTTP."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from edge_runtime import Request, Status
from tests.support.devices import device, face
from tests.support.http import APP_PATH, app_body, astronaut_face_rgb, http_runtime

pytestmark = pytest.mark.integration


async def test_http_and_mqtt_load_at_once_share_one_batcher_without_errors(
    broker, registry, unique
):
    """The app's requests and devices' requests at once: every one answered OK, all faces run
    by the one batcher, each counted under its front door."""
    body = app_body(astronaut_face_rgb())
    http_workers, per_worker, cameras, per_camera = 8, 30, 4, 60
    async with (
        http_runtime(broker.url, registry, unique) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        cams = [
            await stack.enter_async_context(device(broker.url, http.settings.topic_root, f"c{i}"))
            for i in range(cameras)
        ]

        async def app() -> list[int]:
            codes = []
            for _ in range(per_worker):
                status, _, _ = await http.call("POST", APP_PATH, body)
                codes.append(status)
            return codes

        async def camera(cam) -> list[Status]:  # type: ignore[no-untyped-def]
            for i in range(per_camera):
                await cam.send(Request(f"{cam.name}-{i}", cam.name, 0, (face(i),)))
            return [r.status for r in await cam.receive(per_camera, timeout_s=60)]

        async with asyncio.TaskGroup() as tg:
            apps = [tg.create_task(app()) for _ in range(http_workers)]
            devices = [tg.create_task(camera(cam)) for cam in cams]
        _, metrics, _ = await http.call("GET", "/metrics")
        stats = http.runtime.service.stats
    assert all(code == 200 for task in apps for code in task.result())
    assert all(status is Status.OK for task in devices for status in task.result())
    total = http_workers * per_worker + cameras * per_camera
    assert stats.faces == total
    assert stats.batches < total  # requests of both doors were batched together
    text = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
    assert (
        f'edge_requests_total{{frontdoor="tfserving",status="OK"}} {http_workers * per_worker}.0'
        in text
    )
    assert f'edge_requests_total{{frontdoor="mqtt",status="OK"}} {cameras * per_camera}.0' in text


async def test_overload_is_answered_429_and_counted(broker, registry, unique):
    """Beyond the queue bound, HTTP requests get 429 with TF Serving's error body at once;
    the rest are answered; nothing else happens."""
    body = app_body(astronaut_face_rgb())
    async with http_runtime(
        broker.url, registry, unique, **{"batch.max_queue": 2, "batch.max_size": 8}
    ) as http:
        replies = await asyncio.gather(*(http.call("POST", APP_PATH, body) for _ in range(64)))
        exhausted = http.runtime.metrics.registry.get_sample_value(
            "edge_requests_total", {"frontdoor": "tfserving", "status": "RESOURCE_EXHAUSTED"}
        )
    codes = [status for status, _, _ in replies]
    refused = [answer for status, answer, _ in replies if status == 429]
    assert set(codes) == {200, 429}, codes
    assert all("requests already queued; retry later" in str(a["error"]) for a in refused)
    assert exhausted == len(refused)


async def test_a_graceful_stop_answers_the_http_requests_it_holds(broker, registry, unique):
    """On stop the HTTP door stops taking requests and answers those it holds: every call
    gets 200 or finds the door closed; none hangs, none gets an error answer."""
    body = app_body(astronaut_face_rgb())
    answered = asyncio.Event()
    codes: list[int] = []
    async with http_runtime(broker.url, registry, unique) as http:

        async def client() -> None:
            while True:
                try:
                    status, _, _ = await http.call("POST", APP_PATH, body)
                except aiohttp.ClientConnectionError:
                    codes.append(0)  # refused or closed: the door stopped taking requests
                    return
                codes.append(status)
                if len(codes) >= 50:
                    answered.set()

        clients = [asyncio.create_task(client()) for _ in range(16)]
        await answered.wait()
        http.runtime.stop()
        async with asyncio.timeout(20):
            await asyncio.gather(*clients)
    assert set(codes) <= {200, 0}, codes
    assert codes.count(200) >= 50


async def test_a_body_over_the_limit_gets_413_and_a_taken_port_a_clear_error(
    broker, registry, unique
):
    """http.max_body_bytes bounds a request body (413, JSON error); a port already in use
    stops the runtime with the setting's name instead of a traceback."""
    from edge_runtime import Runtime
    from edge_runtime.backends import load_model
    from edge_runtime.errors import ConfigError
    from tests.support.runtime import make_settings

    async with http_runtime(broker.url, registry, unique, **{"http.max_body_bytes": 1000}) as http:
        status, answer, _ = await http.call("POST", APP_PATH, app_body(astronaut_face_rgb()))
        port = int(http.base.rsplit(":", 1)[1])
        taken = make_settings(broker.url, registry, f"{unique}-2", **{"http.port": port})
        model = await asyncio.to_thread(load_model, taken.model, taken.batch.max_size)
        try:
            with pytest.raises(ConfigError, match=r"setting http\.port=.*cannot listen"):
                async with asyncio.timeout(5):  # at once, before connecting to the broker
                    await Runtime(taken, model=model).run()
        finally:
            model.close()
    assert status == 413
    assert isinstance(answer, dict)
    assert "error" in answer
