"""The service's outcome as HTTP: TF Serving's status mapping, and the error both doors raise."""

from __future__ import annotations

from edge_runtime.errors import Overloaded
from edge_runtime.messages import FacePixels, Status
from edge_runtime.service import InferenceService, Outcome

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
