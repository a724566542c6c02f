"""The TF Serving door's fast path: a request's dense float tensor straight from the JSON bytes.

The reference app sends one face as 48 x 48 x 3 doubles in ``instances``: 6,912 numbers that
orjson turns into Python floats and numpy then walks again. pysimdjson parses the document
lazily and copies the numbers into one buffer in C, several times faster (docs/benchmarks.md).
It flattens ragged arrays without a word, so every array's length is checked here, on the
bytes, against the shape its first elements give. Anything this path does not take as it is
(other keys, objects, ``b64``, strings, a ragged or empty list, a parse error) returns None,
and the door's general path parses the body again and answers as TF Serving would.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import simdjson

_KEYS = frozenset({"instances", "signature_name"})
_NUMBER_AND_BLANK = b"0123456789+-.eE \t\r\n"


class DenseInstances:
    """Reads ``{"instances": [dense numbers], "signature_name"?: str}`` bodies.

    One parser, reused: call from one thread, and keep nothing it returns but the array.
    """

    def __init__(self) -> None:
        self._parser = simdjson.Parser()

    def read(self, body: bytes) -> tuple[npt.NDArray[np.float32], str] | None:
        """The instances as float32 and the signature name, or None (see the module)."""
        try:
            document = self._parser.parse(body)
        except (ValueError, RuntimeError):
            return None
        try:
            return _read(document, body)
        finally:
            del document  # the parser is reused only once nothing refers to its document


def _read(document: Any, body: bytes) -> tuple[npt.NDArray[np.float32], str] | None:
    if not isinstance(document, simdjson.Object) or not set(document.keys()) <= _KEYS:
        return None
    signature = document.get("signature_name", "")
    instances = document.get("instances")
    if not isinstance(signature, str) or not isinstance(instances, simdjson.Array):
        return None
    shape = _shape(instances)
    if shape is None or not _regular(body, shape):
        return None
    try:
        flat = np.frombuffer(instances.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):  # a string, a boolean, null, an object among the numbers
        return None
    if flat.size != math.prod(shape):
        return None
    return flat.astype(np.float32).reshape(shape), signature


def _shape(value: Any) -> list[int] | None:
    shape: list[int] = []
    while isinstance(value, simdjson.Array):
        if not len(value):
            return None
        shape.append(len(value))
        value = value[0]
    return shape if len(shape) >= 2 else None


def _regular(body: bytes, shape: list[int]) -> bool:
    """Whether every array at every level has the length ``shape`` says, read from the bytes.

    Walking the parsed arrays cost 2,304 ``len`` calls on the reference app's request, half
    the parse. Here the body less what numbers and blanks are written with must hold the
    shape's skeleton (``[[,,],[,,]]`` for 2 x 3) and no bracket besides: only ``instances``
    (an array) and ``signature_name`` (a string) reach this, so the skeleton is the instances
    themselves, and any bracket in the name breaks the count (general path). An empty array
    where one number belongs leaves the same skeleton; the caller's count of numbers finds it.
    """
    # The shape comes from the first array at each level: a body whose later arrays are short
    # could name a tensor far larger than itself. Each number takes a byte and a comma.
    if 2 * math.prod(shape) > len(body) + 1:
        return False
    arrays = sum(math.prod(shape[:level]) for level in range(len(shape)))  # the skeleton's '['
    structure = body.translate(None, _NUMBER_AND_BLANK)
    return structure.count(b"[") == arrays and _skeleton(tuple(shape)) in structure


@functools.lru_cache(maxsize=8)  # the app sends one shape; others are rare
def _skeleton(shape: tuple[int, ...]) -> bytes:
    inner = b"[" + b"," * (shape[-1] - 1) + b"]"
    for length in reversed(shape[:-1]):
        inner = b"[" + b",".join([inner] * length) + b"]"
    return inner
