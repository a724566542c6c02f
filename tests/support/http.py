"""What the HTTP front door tests share: a runtime with HTTP on, the reference app's request."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt

from device_sim.app import APP_PATH, APP_SIDE, app_body, picture
from edge_runtime import Runtime, Settings
from tests.support.broker import free_port
from tests.support.runtime import make_settings, running_runtime

__all__ = ["APP_PATH", "HttpRuntime", "app_body", "astronaut_face_rgb", "http_runtime"]


@dataclass
class HttpRuntime:
    """A running runtime with its HTTP front door, and a client session for it."""

    runtime: Runtime
    settings: Settings
    base: str
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, body: bytes | str | None = None, **headers: str
    ) -> tuple[int, dict[str, object] | bytes, aiohttp.typedefs.LooseHeaders]:
        """(status, JSON body or raw bytes, headers) of one request."""
        async with self.session.request(
            method, self.base + path, data=body, headers=headers or None
        ) as reply:
            raw = await reply.read()
            if reply.content_type == "application/json":
                return reply.status, json.loads(raw), reply.headers
            return reply.status, raw, reply.headers


@contextlib.asynccontextmanager
async def http_runtime(
    broker_url: str, registry: Path, unique: str, **overrides: object
) -> AsyncIterator[HttpRuntime]:
    """A runtime serving HTTP on a free loopback port."""
    port = free_port()
    settings = make_settings(
        broker_url,
        registry,
        unique,
        **{"http.port": port, "http.host": "127.0.0.1", **overrides},
    )
    async with running_runtime(settings) as runtime, aiohttp.ClientSession() as session:
        yield HttpRuntime(runtime, settings, f"http://127.0.0.1:{port}", session)


def astronaut_face_rgb(size: int = APP_SIDE) -> npt.NDArray[np.uint8]:
    """The face in scikit-image's astronaut() photo (a real smile), RGB, ``size`` square."""
    return picture(None, face=True, side=size)
