"""Counting and timing one HTTP door's answers in the runtime's metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from edge_runtime.messages import Status
from edge_runtime.metrics import Metrics
from edge_runtime.web.outcomes import HttpError
from edge_runtime.web.responses import json_response

_LOGGER = logging.getLogger(__name__)


class DoorMetrics:
    """Counts one HTTP door's requests in the runtime's metrics, under its frontdoor label."""

    def __init__(
        self, metrics: Metrics, frontdoor: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self._frontdoor = frontdoor
        self._clock = clock

    def wrap(
        self, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """``handler`` with its ``HttpError`` answered as JSON, every answer timed and counted."""

        async def answer(request: web.Request) -> web.StreamResponse:
            started = self._clock()
            try:
                response = await handler(request)
            except HttpError as error:
                self.failed(error, self._clock() - started, request)
                return json_response({"error": error.message}, error.status)
            self.answered(Status.OK.name, self._clock() - started)
            return response

        return answer

    def answered(self, label: str, elapsed_s: float) -> None:
        """One request answered with status ``label``."""
        self._metrics.requests.labels(self._frontdoor, label).inc()
        self._metrics.request_seconds.labels(self._frontdoor).observe(elapsed_s)

    def failed(self, error: HttpError, elapsed_s: float, request: web.Request) -> None:
        """One request answered with an error."""
        if error.reason:
            self._metrics.rejected.labels(self._frontdoor, error.reason).inc()
        level = logging.WARNING if error.status >= 500 else logging.INFO
        _LOGGER.log(
            level,
            "%s %s %.200s -> %d: %.300s",
            self._frontdoor,
            request.method,
            request.path,
            error.status,
            error.message,
        )
        self.answered(error.label, elapsed_s)
