"""What both HTTP front doors share: JSON responses, status codes, metrics, model headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from edge_runtime.errors import Overloaded
from edge_runtime.messages import FacePixels, ModelRef, Status
from edge_runtime.metrics import Metrics
from edge_runtime.service import InferenceService, Outcome

_LOGGER = logging.getLogger(__name__)

JSON = "application/json"
MODEL_NAME_HEADER = "X-Edge-Model-Name"
MODEL_VERSION_HEADER = "X-Edge-Model-Version"

# TF Serving's mapping of error codes to HTTP statuses (http_rest_api_handler / REST.md §5);
# the Open Inference Protocol door uses the same.
HTTP_STATUS = {
    Status.OK: 200,
    Status.INVALID_ARGUMENT: 400,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.UNAVAILABLE: 503,
    Status.DEADLINE_EXCEEDED: 504,
    Status.INTERNAL: 500,
}


class HttpError(Exception):
    """An answer other than 200: status, message for the client, metric labels."""

    def __init__(self, status: int, message: str, *, label: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.label = label  # the status label of edge_requests_total
        self.reason = reason  # the reason label of edge_invalid_requests_total, if invalid


async def answered(service: InferenceService, faces: tuple[FacePixels, ...]) -> Outcome:
    """The service's OK outcome for ``faces``.

    Raises:
        HttpError: 429 when the queue is full, else the outcome's status as HTTP_STATUS maps it.
    """
    try:
        outcome = await service.infer(faces)
    except Overloaded as exc:
        raise HttpError(429, str(exc), label=Status.RESOURCE_EXHAUSTED.name) from None
    if outcome.status is not Status.OK:
        raise HttpError(HTTP_STATUS[outcome.status], outcome.error, label=outcome.status.name)
    return outcome


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response encoded with orjson (measured 2.5x faster than json on the app's body)."""
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type=JSON,
        headers=headers,
    )


def model_headers(model: ModelRef) -> dict[str, str]:
    """Headers naming the model version that answered."""
    return {MODEL_NAME_HEADER: model.name, MODEL_VERSION_HEADER: model.version}


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
