"""The Open Inference Protocol (KServe V2) over HTTP (/v2), with the binary tensor extension.

Triton's, KServe's and MLServer's clients can call the runtime through it.

The served model answers under its registry name and version: input ``face``
(``UINT8`` 0..255, or ``FP32`` in ``http.float_range``) shaped [N, H, W] or [N, H, W, C] with C 1
or 3; outputs ``probabilities`` (FP32 [N, labels]) and ``label`` (BYTES [N]).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web

from edge_runtime.messages import FacePixels, FaceResult, Status
from edge_runtime.metrics import Metrics
from edge_runtime.service import InferenceService
from edge_runtime.settings import HttpSettings, LimitSettings
from edge_runtime.web.door_metrics import DoorMetrics
from edge_runtime.web.oip_json import InferRequestReader
from edge_runtime.web.outcomes import HttpError, answered
from edge_runtime.web.responses import JSON, json_response, model_headers
from edge_runtime.web.tensors import Json, TensorError, faces_of, scale_floats

FRONTDOOR = "oip"
INPUT = "face"
PROBABILITIES = "probabilities"
LABEL = "label"
HEADER_LENGTH = "Inference-Header-Content-Length"  # the binary tensor extension's header
_DTYPES: dict[str, np.dtype[np.generic]] = {"UINT8": np.dtype(np.uint8), "FP32": np.dtype("<f4")}


def _bad(message: str, reason: str = "bad_request") -> HttpError:
    return HttpError(400, message, label=Status.INVALID_ARGUMENT.name, reason=reason)


def _server_version() -> str:
    try:
        return metadata.version("kubeedge-edge-service")
    except metadata.PackageNotFoundError:
        return "0"


class OipDoor:
    """Answers /v2 requests from the inference service.

    Args:
        settings: The HTTP settings (float range).
        limits: Request limits shared with every front door.
        service: The inference service.
        metrics: The runtime's metrics.
        ready: True when the runtime serves.
        clock: Monotonic clock.
    """

    def __init__(
        self,
        settings: HttpSettings,
        limits: LimitSettings,
        service: InferenceService,
        metrics: Metrics,
        ready: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._limits = limits
        self._service = service
        self._metrics = DoorMetrics(metrics, FRONTDOOR, clock)
        self._ready = ready
        self._reader = InferRequestReader()

    def routes(self) -> list[web.RouteDef]:
        """The protocol's routes."""
        model = "/v2/models/{name}"
        versioned = "/v2/models/{name}/versions/{version}"
        return [
            web.get("/v2", self._server_metadata),
            web.get("/v2/health/live", self._live),
            web.get("/v2/health/ready", self._server_ready),
            web.get(model, self._metrics.wrap(self._model_metadata)),
            web.get(versioned, self._metrics.wrap(self._model_metadata)),
            web.get(model + "/ready", self._metrics.wrap(self._model_ready)),
            web.get(versioned + "/ready", self._metrics.wrap(self._model_ready)),
            web.post(model + "/infer", self._metrics.wrap(self._infer)),
            web.post(versioned + "/infer", self._metrics.wrap(self._infer)),
        ]

    async def _server_metadata(self, _request: web.Request) -> web.Response:
        return json_response(
            {
                "name": "edge-runtime",
                "version": _server_version(),
                "extensions": ["binary_tensor_data"],
            }
        )

    async def _live(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _server_ready(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self._ready() else 503)

    def _check_model(self, request: web.Request) -> None:
        ref = self._service.model.ref
        name, version = request.match_info["name"], request.match_info.get("version")
        if name != ref.name:
            raise HttpError(
                404,
                f"Request for unknown model: '{name}' is not found",
                label="NOT_FOUND",
                reason="unknown_model",
            )
        if version is not None and version != ref.version:
            raise HttpError(
                404,
                f"Request for unknown model: '{name}' version {version} is not found "
                f"(serving {ref.version})",
                label="NOT_FOUND",
                reason="unknown_model",
            )

    async def _model_metadata(self, request: web.Request) -> web.Response:
        self._check_model(request)
        model = self._service.model
        spec = model.input_spec
        return json_response(
            {
                "name": model.ref.name,
                "versions": [model.ref.version],
                "platform": "tflite" if model.variant else "unknown",
                "inputs": [
                    {
                        "name": INPUT,
                        "datatype": "UINT8",
                        "shape": [-1, spec.height, spec.width, spec.channels],
                    }
                ],
                "outputs": [
                    {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(model.labels)]},
                    {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
                ],
                "parameters": {"labels": list(model.labels)},
            },
            headers=model_headers(model.ref),
        )

    async def _model_ready(self, request: web.Request) -> web.Response:
        self._check_model(request)
        return web.Response(status=200 if self._ready() else 503)

    async def _infer(self, request: web.Request) -> web.Response:
        self._check_model(request)
        body = await request.read()
        part, binary = _split(body, request.headers.get(HEADER_LENGTH))
        read = self._reader.read(part)
        document, values = read if read is not None else (_parse(part), None)
        faces, wanted = self._decode(document, binary, values)
        outcome = await answered(self._service, faces)
        answer: dict[str, Json] = {
            "model_name": outcome.model.name,
            "model_version": outcome.model.version,
        }
        if "id" in document:
            answer["id"] = document["id"]
        outputs, chunks = _outputs(outcome.results, wanted)
        answer["outputs"] = outputs
        header = orjson.dumps(answer)
        headers = model_headers(outcome.model)
        if not chunks:
            return web.Response(body=header, content_type=JSON, headers=headers)
        headers[HEADER_LENGTH] = str(len(header))
        return web.Response(
            body=b"".join([header, *chunks]),
            content_type="application/octet-stream",
            headers=headers,
        )

    def _decode(
        self,
        document: dict[str, Json],
        binary: memoryview,
        values: npt.NDArray[np.float64] | None,
    ) -> tuple[tuple[FacePixels, ...], dict[str, bool]]:
        """The faces of the request, and which outputs to answer (name: binary or not).

        ``values``: the input's JSON ``data``, when the fast path read it (and left it out of
        ``document``).
        """
        inputs = document.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise _bad(f"expected 'inputs' to hold one tensor, named '{INPUT}'")
        tensor = inputs[0]
        if tensor.get("name") != INPUT:
            raise _bad(f"unexpected inference input '{tensor.get('name')}', expected '{INPUT}'")
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
        if dtype is None:
            raise _bad(f"input '{INPUT}': datatype {datatype!r}, expected UINT8 or FP32")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _bad(f"input '{INPUT}': shape must be a list of sizes")
        array = _values(tensor, dtype, shape, binary, values)
        try:
            pixels: npt.NDArray[np.float32 | np.uint8] = (
                scale_floats(array.astype(np.float32), self._settings.float_range)
                if datatype == "FP32"
                else array
            )
            faces = faces_of(pixels, self._limits)
        except TensorError as exc:
            raise _bad(f"input '{INPUT}': {exc}", exc.reason) from None
        return faces, _wanted(document)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON part of a request and the binary tensor data after it (a view, not a copy)."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(body):
        raise _bad(f"{HEADER_LENGTH} {header_length!r} does not fit a body of {len(body)} bytes")
    size = int(header_length)
    view = memoryview(body)
    return bytes(view[:size]), view[size:]  # the JSON part is small when tensors are binary


def _parse(part: bytes) -> dict[str, Json]:
    try:
        document = orjson.loads(part)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"failed to parse the request JSON: {exc}", "bad_json") from None
    if not isinstance(document, dict):
        raise _bad("the request must be a JSON object", "bad_json")
    return document


def _values(
    tensor: dict[str, Json],
    dtype: np.dtype[np.generic],
    shape: list[int],
    binary: memoryview,
    values: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.uint8 | np.float32]:
    count = math.prod(shape)  # sizes checked by the caller; np.prod costs more than it reads
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if size != count * dtype.itemsize or len(binary) < size:
            raise _bad(
                f"input '{INPUT}': {size} bytes of binary data for shape {shape} of "
                f"{dtype.name} ({len(binary)} sent)"
            )
        return np.frombuffer(binary[:size], dtype).reshape(shape)
    flat = values
    if flat is None:
        try:
            flat = np.asarray(tensor.get("data"), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise _bad(f"input '{INPUT}': 'data' must be numbers") from None
    if flat.size != count:
        raise _bad(f"input '{INPUT}': {flat.size} values for shape {shape} ({count} expected)")
    if dtype != np.uint8:
        return flat.astype(dtype).reshape(shape)
    # NaN fails both comparisons and infinity the second; within 0..255 the cast is exact
    # for whole numbers only.
    if not (flat.min(initial=0) >= 0 and flat.max(initial=0) <= 255):
        raise _bad(f"input '{INPUT}': UINT8 values must be whole numbers 0..255")
    pixels = flat.astype(np.uint8)
    if not (pixels == flat).all():
        raise _bad(f"input '{INPUT}': UINT8 values must be whole numbers 0..255")
    return pixels.reshape(shape)


def _wanted(document: dict[str, Json]) -> dict[str, bool]:
    parameters = document.get("parameters")
    binary = bool(isinstance(parameters, dict) and parameters.get("binary_data_output"))
    requested = document.get("outputs")
    if requested is None:
        return {PROBABILITIES: binary, LABEL: binary}
    if not isinstance(requested, list):
        raise _bad("'outputs' must be a list")
    wanted: dict[str, bool] = {}
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in (PROBABILITIES, LABEL):
            raise _bad(
                f"unexpected inference output '{name}', expected '{PROBABILITIES}' or '{LABEL}'"
            )
        own = output.get("parameters") if isinstance(output, dict) else None
        wanted[name] = bool(own.get("binary_data", binary)) if isinstance(own, dict) else binary
    return wanted


def _outputs(
    results: tuple[FaceResult, ...], wanted: dict[str, bool]
) -> tuple[list[dict[str, Json]], list[bytes]]:
    outputs: list[dict[str, Json]] = []
    chunks: list[bytes] = []
    for name, binary in wanted.items():
        if name == PROBABILITIES:
            rows = [r.probabilities for r in results]
            output: dict[str, Json] = {
                "name": name,
                "datatype": "FP32",
                "shape": [len(results), len(rows[0]) if rows else 0],
            }
            if binary:
                chunk = np.asarray(rows, dtype="<f4").tobytes()
            else:
                output["data"] = [p for row in rows for p in row]
        else:
            labels = [r.label for r in results]
            output = {"name": name, "datatype": "BYTES", "shape": [len(results)]}
            if binary:
                encoded = [label.encode() for label in labels]
                chunk = b"".join(struct.pack("<I", len(e)) + e for e in encoded)
            else:
                output["data"] = labels
        if binary:
            output["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        outputs.append(output)
    return outputs, chunks
