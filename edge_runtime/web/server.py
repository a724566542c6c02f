"""The runtime's HTTP server, on its event loop: the HTTP front doors, metrics and probes.

aiohttp was chosen by measurement (README, "HTTP front door"): as fast as uvicorn with Starlette
on the reference app's request, one dependency instead of three, and a runner that lives inside
our own event loop and task group instead of owning the process's signals.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edge_runtime.errors import ConfigError
from edge_runtime.web.responses import json_response

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ops_routes(registry: CollectorRegistry, ready: Callable[[], bool]) -> list[web.RouteDef]:
    """``/metrics`` (Prometheus), ``/healthz`` (the process answers), ``/readyz`` (it serves)."""

    async def metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(text="not ready\n", status=503)

    return [
        web.get("/metrics", metrics),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
    ]


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Aiohttp's own refusals (404, 405, 413) as the JSON errors both protocols use."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        _LOGGER.info("http %s %.200s -> %d", request.method, request.path, exc.status)
        return json_response({"error": exc.reason}, exc.status)


def _bearer(
    token: str, on_refused: Callable[[], None]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Every /v1 and /v2 request must carry ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path[:3].lower() in ("/v1", "/v2"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                on_refused()
                _LOGGER.info("http %s %.200s -> 401", request.method, request.path)
                return json_response(
                    {"error": "a bearer token is required (Authorization: Bearer ...)"},
                    401,
                    {"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    return check


class HttpListener:
    """One aiohttp site on ``host:port`` while the context is open.

    Args:
        routes: What it serves.
        fallback: Answers every request under /v1 (TF Serving's REST API).
        host: Bind address.
        port: Bind port.
        max_body_bytes: Larger request bodies get 413.
        shutdown_timeout_s: On exit, longest wait for requests being answered.
        name: For logs.
        key: The port's setting, named when the port cannot be bound.
        token: When set, /v1 and /v2 ask for it as a bearer token (probes stay open).
        on_refused: Called for each request refused for want of it.
    """

    def __init__(
        self,
        routes: list[web.RouteDef],
        *,
        fallback: Handler | None = None,
        host: str,
        port: int,
        max_body_bytes: int = 1024**2,
        shutdown_timeout_s: float = 10.0,
        name: str,
        key: str,
        token: str = "",
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        middlewares = [_json_errors] + ([_bearer(token, on_refused)] if token else [])
        app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
        app.add_routes(routes)
        if fallback is not None:
            # TF Serving matches its paths case-insensitively, /V1/MODELS/... included.
            app.router.add_route("*", "/{version:[vV]1}{tail:(/.*)?}", fallback)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
        )
        self._host = host
        self._port = port
        self._name = name
        self._key = key

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                self._key, self._port, f"cannot listen on {self._host}: {exc}"
            ) from exc
        _LOGGER.info("%s on http://%s:%d", self._name, self._host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()
