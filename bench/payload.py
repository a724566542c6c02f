"""Part 6, payload: our protobuf uint8 face vs the reference app's TF-Serving JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeinfer.v1 import inference_pb2


@dataclass(frozen=True, slots=True)
class PayloadRow:
    """Bytes per face and decode cost of one wire format."""

    format: str
    bytes_per_face: int
    decode_us: float


def _decode_time(decode: Callable[[bytes], object], payload: bytes, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        decode(payload)
    return (time.perf_counter() - start) / repeats * 1e6


def measure(repeats: int) -> list[PayloadRow]:
    """Encode one face both ways; time decoding to a float32 array."""
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8)
    request = inference_pb2.InferenceRequest(request_id="r1", device_id="cam-1")
    request.faces.add().pixels.CopyFrom(
        inference_pb2.Tensor(
            shape=[64, 64, 1], dtype=inference_pb2.DATA_TYPE_UINT8, data=face.tobytes()
        )
    )
    ours = request.SerializeToString()
    # The reference Android app posts TF-Serving JSON: 48x48x3 floats as JSON numbers.
    reference = json.dumps(
        {"instances": [rng.uniform(0, 1, (48, 48, 3)).round(6).tolist()]}
    ).encode()

    def decode_ours(payload: bytes) -> np.ndarray:
        message = inference_pb2.InferenceRequest.FromString(payload)
        tensor = message.faces[0].pixels
        return np.frombuffer(tensor.data, np.uint8).reshape(tuple(tensor.shape)).astype(np.float32)

    def decode_reference(payload: bytes) -> np.ndarray:
        return np.asarray(json.loads(payload)["instances"][0], dtype=np.float32)

    return [
        PayloadRow(
            "protobuf uint8 64x64x1 (ours)", len(ours), _decode_time(decode_ours, ours, repeats)
        ),
        PayloadRow(
            "TF-Serving JSON 48x48x3 float (reference app)",
            len(reference),
            _decode_time(decode_reference, reference, max(repeats // 20, 5)),
        ),
    ]
