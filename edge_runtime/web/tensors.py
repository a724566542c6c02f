"""JSON values to pixel arrays and faces, with TF Serving's error messages where it has them."""

from __future__ import annotations

import base64
import binascii
from typing import TypeGuard

import numpy as np
import numpy.typing as npt
import orjson

from edge_runtime.messages import FacePixels
from edge_runtime.preprocessing import opencv
from edge_runtime.settings import FloatRange, LimitSettings

_DEBUG_BYTES = 256  # TF Serving cuts values in its messages at this size (json_tensor.cc)

Json = object


class TensorError(ValueError):
    """A JSON value that is not the tensor it should be; the message is for the client."""

    def __init__(self, message: str, reason: str = "bad_tensor") -> None:
        super().__init__(message)
        self.reason = reason


def debug_string(value: Json) -> str:
    """A JSON value as TF Serving shows it in errors: compact, cut at 256 bytes."""
    return orjson.dumps(value, default=str)[:_DEBUG_BYTES].decode("utf-8", "replace")


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape as TF Serving writes it in messages: ``[48,48,3]``."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def _type_name(value: Json) -> str:
    # rapidjson's type names, as TF Serving's JsonTypeString prints them.
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def is_b64(value: Json) -> TypeGuard[dict[str, str]]:
    """``{"b64": "..."}``: TF Serving's form of binary data."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _shape(value: Json) -> list[int]:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _check(value: Json, level: int, shape: list[int]) -> None:
    """Find the first fault as TF Serving's FillTensorProto would (the slow path)."""
    if not isinstance(value, list):
        if level != len(shape):
            raise TensorError(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in "
                f"the JSON DOM. Expected at level: {len(shape)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TensorError(
                f"JSON Value: {debug_string(value)} Type: {_type_name(value)} is not of "
                "expected type: float"
            )
        return
    if level >= len(shape):
        raise TensorError(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise TensorError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}"
        )
    for item in value:
        _check(item, level + 1, shape)


def dense(value: Json) -> npt.NDArray[np.float32]:
    """A dense float tensor from nested JSON lists of numbers.

    Raises:
        TensorError: a non-number leaf or a ragged list, with TF Serving's message.
    """
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        array = None  # ragged: numpy refuses it
    if array is not None and array.dtype.kind in "fiu":
        return array.astype(np.float32, copy=False)
    _check(value, 0, _shape(value))
    raise TensorError(f"JSON Value: {debug_string(value)} is not a dense tensor of numbers")


def decode_image(value: dict[str, str]) -> npt.NDArray[np.uint8]:
    """An RGB pixel array from ``{"b64": <JPEG or PNG>}``.

    Raises:
        TensorError: not base64, or not an image OpenCV can read.
    """
    try:
        data = base64.b64decode(value["b64"], validate=False)
    except (binascii.Error, ValueError):
        raise TensorError("Unable to base64 decode") from None
    cv2 = opencv()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise TensorError("b64 value is not a JPEG or PNG image OpenCV can read")
    rgb: npt.NDArray[np.uint8] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return rgb


def scale_floats(
    pixels: npt.NDArray[np.float32], float_range: FloatRange
) -> npt.NDArray[np.float32]:
    """Float pixels as 0..255 intensities.

    Raises:
        TensorError: values outside the configured range (a client sending the other one).
    """
    top = 1.0 if float_range is FloatRange.UNIT else 255.0
    if pixels.size and not (
        np.isfinite(pixels).all() and pixels.min() >= 0.0 and pixels.max() <= top
    ):
        raise TensorError(
            f"pixel values must be within [0, {top:g}] (http.float_range={float_range.value})",
            "bad_range",
        )
    if float_range is FloatRange.UNIT:
        scaled: npt.NDArray[np.float32] = pixels * np.float32(255.0)
        return scaled
    return pixels


def faces_of(
    batch: npt.NDArray[np.float32 | np.uint8], limits: LimitSettings
) -> tuple[FacePixels, ...]:
    """Faces from an (N, H, W) or (N, H, W, C) array of 0..255 intensities, within limits.

    Raises:
        TensorError: another shape, 2 or more than 3 channels, too many or too large faces.
    """
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    if batch.ndim != 4 or batch.shape[3] not in (1, 3) or 0 in batch.shape:
        raise TensorError(
            "each face must be rows x columns [x 1 or 3 channels] of pixels; got shape "
            + shape_text(batch.shape[1:])
        )
    count, height, width, _ = batch.shape
    if count > limits.max_faces_per_request:
        raise TensorError(
            f"{count} faces in one request; at most {limits.max_faces_per_request}",
            "too_many_faces",
        )
    if max(height, width) > limits.max_face_side:
        raise TensorError(
            f"face of {height}x{width} pixels; at most {limits.max_face_side} on a side",
            "face_too_large",
        )
    if batch.dtype == np.float32:
        return tuple(FacePixels(face) for face in batch)
    return tuple(FacePixels(np.ascontiguousarray(face, np.uint8)) for face in batch)
