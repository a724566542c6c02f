"""TF Serving's REST API (/v1) over the inference service, as TF Serving itself answers it.

Routes, bodies, messages and status codes follow tensorflow/serving's
``http_rest_api_util.cc``, ``http_rest_api_handler.cc`` and ``json_tensor.cc`` (copies and
notes in ``../shared/tfserving``). The served model has one signature, ``serving_default``:
input ``image`` (faces as rows x columns [x channels] of float pixels, in [0, 1] by default, or
``{"b64": JPEG/PNG}``), output ``probabilities`` (one per label, in the model's label order).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web

from edge_runtime.messages import FacePixels, Status
from edge_runtime.metrics import Metrics
from edge_runtime.service import InferenceService
from edge_runtime.settings import HttpSettings, LimitSettings, pairs
from edge_runtime.web.dense_json import DenseInstances
from edge_runtime.web.door_metrics import DoorMetrics
from edge_runtime.web.outcomes import HttpError, answered
from edge_runtime.web.responses import json_response, model_headers
from edge_runtime.web.tensors import (
    Json,
    TensorError,
    debug_string,
    decode_image,
    dense,
    faces_of,
    is_b64,
    scale_floats,
    shape_text,
)

FRONTDOOR = "tfserving"
SIGNATURE = "serving_default"
INPUT = "image"
OUTPUT = "probabilities"
SERVING = "serving"  # in http.tfserving_versions: whichever version serves now

# http_rest_api_util.cc: kPredictionApiGegex and kModelStatusApiRegex (RE2 FullMatch).
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
    r"(?:/(metadata))?",
    re.IGNORECASE,
)


def _bad(message: str, reason: str = "bad_request") -> HttpError:
    return HttpError(400, message, label=Status.INVALID_ARGUMENT.name, reason=reason)


def _not_found(message: str) -> HttpError:
    return HttpError(404, message, label="NOT_FOUND", reason="unknown_model")


@dataclass(frozen=True, slots=True)
class _Spec:
    """A parsed model path: name, and a version number or a label (or neither: latest)."""

    name: str
    version: int | None
    label: str | None

    def request(self) -> str:
        """How ServerCore names the request in 'Servable not found' messages."""
        if self.version is None:
            return f"Latest({self.name})"
        return f"Specific({self.name}, {self.version})"


class TfServingDoor:
    """Answers /v1 requests from the inference service.

    Args:
        settings: The HTTP settings (model name and version mapping, float range).
        limits: Request limits shared with every front door.
        service: The inference service.
        metrics: The runtime's metrics.
        clock: Monotonic clock.
    """

    def __init__(
        self,
        settings: HttpSettings,
        limits: LimitSettings,
        service: InferenceService,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._limits = limits
        self._service = service
        self._answer = DoorMetrics(metrics, FRONTDOOR, clock).wrap(self._dispatch)
        self._names = pairs(settings.tfserving_models)
        self._versions = {int(n): v for n, v in pairs(settings.tfserving_versions).items()}
        self._labels = {label: int(n) for label, n in pairs(settings.tfserving_labels).items()}
        self._dense = DenseInstances()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer any request under /v1 (TF Serving's path regex is ``(?i)/v1/.*``)."""
        if not request.path.lower().startswith("/v1/") and request.path.lower() != "/v1":
            raise web.HTTPNotFound
        return await self._answer(request)

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.rel_url.raw_path
        malformed = _bad(f"Malformed request: {request.method} {path}", "malformed_path")
        pattern = {"POST": _PREDICT_PATH, "GET": _STATUS_PATH}.get(request.method)
        match = pattern.fullmatch(path) if pattern is not None else None
        if match is None:
            raise malformed
        name, version_text, label, verb = match.groups()
        spec = _Spec(
            unquote(name or ""),
            self._version_number(version_text),
            unquote(label) if label else None,
        )
        if request.method == "GET":
            if not spec.name:
                raise _bad("Missing model name in request.")
            if verb == "metadata":
                return self._metadata(spec)
            return self._status(spec)
        if verb != "predict":
            if verb in ("classify", "regress"):
                raise _bad(
                    f"Expected {verb} signature method_name to be tensorflow/serving/{verb}. "
                    "Was: tensorflow/serving/predict",
                    "unsupported_method",
                )
            raise malformed  # TF Serving compares the method case-sensitively
        return await self._predict(spec, await request.read())

    @staticmethod
    def _version_number(text: str | None) -> int | None:
        if not text:
            return None
        number = int(text)
        if number >= 2**63:
            raise _bad(f"Failed to convert version: {text} to numeric.")
        return number

    def _unlabelled(self, spec: _Spec) -> _Spec:
        """``spec`` with its version label replaced by the version number it names.

        Raises:
            HttpError: TF Serving's 400 for a label it does not know.
        """
        if spec.label is None:
            return spec
        if spec.label not in self._labels:
            raise _bad(f"Unrecognized servable version label: {spec.label}", "unknown_label")
        return _Spec(spec.name, self._labels[spec.label], None)

    def _registry_name(self, name: str) -> str | None:
        if name in self._names:
            return self._names[name]
        return name if name == self._service.model.ref.name else None

    def _serving_numbers(self) -> list[int]:
        """The mapped version numbers that name the model serving now, lowest first."""
        served = self._service.model.ref.version
        return sorted(n for n, v in self._versions.items() if v in (SERVING, served))

    def _resolve(self, spec: _Spec) -> int:
        """The version number a request gets, if the served model is what it asks for.

        Raises:
            HttpError: TF Serving's 400 for an unknown label, 404 for anything not served.
        """
        version = self._unlabelled(spec).version
        registry = self._registry_name(spec.name)
        serving = self._serving_numbers()
        if registry != self._service.model.ref.name or not serving:
            raise _not_found(f"Servable not found for request: {spec.request()}")
        if version is None:
            return serving[-1]
        if version not in serving:
            raise _not_found(
                f"Servable not found for request: {_Spec(spec.name, version, None).request()}"
            )
        return version

    def _status(self, spec: _Spec) -> web.Response:
        registry = self._registry_name(spec.name)
        serving = self._serving_numbers() if registry == self._service.model.ref.name else []
        if not serving:
            raise _not_found(f"Could not find any versions of model {spec.name}")
        spec = self._unlabelled(spec)
        if spec.version is not None:
            if spec.version not in serving:
                raise _not_found(f"Could not find version {spec.version} of model {spec.name}")
            serving = [spec.version]
        return json_response(
            {
                "model_version_status": [
                    {
                        "version": str(number),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                    for number in reversed(serving)
                ]
            },
            headers=model_headers(self._service.model.ref),
        )

    def _metadata(self, spec: _Spec) -> web.Response:
        version = self._resolve(spec)
        labels = len(self._service.model.labels)

        def tensor(name: str, sizes: list[int]) -> dict[str, object]:
            return {
                "dtype": "DT_FLOAT",
                "tensor_shape": {
                    "dim": [{"size": str(size), "name": ""} for size in sizes],
                    "unknown_rank": False,
                },
                "name": f"{name}:0",
            }

        signature = {
            "inputs": {INPUT: tensor(INPUT, [-1, -1, -1, -1])},
            "outputs": {OUTPUT: tensor(OUTPUT, [-1, labels])},
            "method_name": "tensorflow/serving/predict",
        }
        return json_response(
            {
                "model_spec": {"name": spec.name, "signature_name": "", "version": str(version)},
                "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
            },
            headers=model_headers(self._service.model.ref),
        )

    async def _predict(self, spec: _Spec, body: bytes) -> web.Response:
        faces, columnar = self._dense_faces(spec, body), False
        if faces is None:
            document = _parse(body)
            signature = document.get("signature_name", SIGNATURE)
            if not isinstance(signature, str):
                raise _bad(
                    f"JSON Value: {debug_string(document)} not formatted correctly. "
                    "'signature_name' key must be a string value.",
                    "bad_json",
                )
            self._resolve(spec)
            _check_signature(signature)
            columnar = "instances" not in document
            faces = self._faces(document)
        outcome = await answered(self._service, faces)
        rows = [list(result.probabilities) for result in outcome.results]
        return json_response(
            {"outputs" if columnar else "predictions": rows}, headers=model_headers(outcome.model)
        )

    def _dense_faces(self, spec: _Spec, body: bytes) -> tuple[FacePixels, ...] | None:
        """The faces of a plain dense ``instances`` request (the reference app's).

        None sends the request to the general path, which answers it as TF Serving does.
        """
        read = self._dense.read(body)
        if read is None:
            return None
        batch, signature = read
        self._resolve(spec)
        _check_signature(signature)
        try:
            pixels = scale_floats(batch, self._settings.float_range)
        except TensorError:
            return None  # the general path names the element, as TF Serving does
        return self._limited(pixels)

    def _faces(self, document: dict[str, Json]) -> tuple[FacePixels, ...]:
        try:
            batch = self._batch(document)
        except TensorError as exc:
            raise _bad(str(exc), exc.reason) from None
        return self._limited(batch)

    def _limited(self, batch: npt.NDArray[np.float32]) -> tuple[FacePixels, ...]:
        """The faces of ``batch``, or TF Serving's 400 when they break the limits."""
        try:
            return faces_of(batch, self._limits)
        except TensorError as exc:
            raise _bad(str(exc), exc.reason) from None

    def _batch(self, document: dict[str, Json]) -> npt.NDArray[np.float32]:
        has_instances, has_inputs = "instances" in document, "inputs" in document
        if has_instances and has_inputs:
            raise TensorError(
                f"JSON Value: {debug_string(document)} Not formatted correctly expecting "
                "only one of 'inputs' or 'instances' keys to exist "
            )
        if has_instances:
            return self._rows(document, document["instances"])
        if has_inputs:
            return self._columns(document["inputs"])
        raise TensorError("Missing 'inputs' or 'instances' key")

    def _rows(self, document: dict[str, Json], instances: Json) -> npt.NDArray[np.float32]:
        if not isinstance(instances, list):
            raise TensorError(
                f"JSON Value: {debug_string(document)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise TensorError(
                f"JSON Value: {debug_string(document)} No values in 'instances' array"
            )
        named = isinstance(instances[0], dict) and not is_b64(instances[0])
        arrays = []
        for index, item in enumerate(instances):
            if named:
                if not isinstance(item, dict) or is_b64(item):
                    raise TensorError(
                        f"Expecting object but got list at item {index} of input list"
                    )
                if set(item) != {INPUT}:
                    raise TensorError(
                        f"Failed to process element: {index} of 'instances' list. JSON object: "
                        f"{debug_string(item)} keys must be equal to: {INPUT}"
                    )
                item = item[INPUT]
            elif isinstance(item, dict) and not is_b64(item):
                raise TensorError(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                arrays.append(self._pixels(item))
            except TensorError as exc:
                raise TensorError(
                    f"Failed to process element: {index} of 'instances' list. Error: "
                    f"INVALID_ARGUMENT: {exc}",
                    exc.reason,
                ) from None
            if arrays[-1].size != arrays[0].size:
                raise TensorError(
                    f"Expecting tensor size: {arrays[0].size} but got: {arrays[-1].size}"
                )
            if arrays[-1].shape != arrays[0].shape:
                raise TensorError(
                    f"Expecting shape {shape_text(arrays[0].shape)} but got: "
                    f"{shape_text(arrays[-1].shape)}"
                )
        return np.stack(arrays)

    def _columns(self, inputs: Json) -> npt.NDArray[np.float32]:
        if isinstance(inputs, dict) and not is_b64(inputs):
            if INPUT not in inputs:
                raise TensorError(f"Missing named input: {INPUT} in 'inputs' object.")
            inputs = inputs[INPUT]
        if is_b64(inputs):
            return self._pixels(inputs)[np.newaxis]
        if isinstance(inputs, list) and inputs and is_b64(inputs[0]):
            return np.stack([self._pixels(item) for item in inputs])
        return self._pixels(inputs)

    def _pixels(self, value: Json) -> npt.NDArray[np.float32]:
        if is_b64(value):
            return decode_image(value).astype(np.float32)
        return scale_floats(dense(value), self._settings.float_range)


def _check_signature(name: str) -> None:
    """TF Serving's answer to a signature the model does not have (empty: the default)."""
    if (name or SIGNATURE) != SIGNATURE:
        raise _bad(
            f'Serving signature name: "{name}" not found in signature def', "unknown_signature"
        )


def _parse(body: bytes) -> dict[str, Json]:
    """The request document, or TF Serving's parse errors (ParseJson in json_tensor.cc)."""
    if not body:
        raise _bad("JSON Parse error: The document is empty", "bad_json")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"JSON Parse error: Invalid value. at offset: {exc.pos}", "bad_json") from None
    if not isinstance(document, dict):
        raise _bad(f"JSON Value: {debug_string(document)} Is not object", "bad_json")
    return document
