"""The TF Serving door's fast path: a request's dense float tensor straight from the JSON bytes.

The reference app sends one face as 48 x 48 x 3 doubles in ``instances``: 6,912 numbers that
orjson turns into Python floats and numpy then walks again. pysimdjson parses the document
lazily and copies the numbers into one buffer in C, several times faster (docs/benchmarks.md).
It flattens
ragged arrays without a word, so every array's length is checked here against the shape its
first elements give. Anything this path does not take as it is (other keys, objects, ``b64``,
strings, a ragged or empty list, a parse error) returns None, and the door's general path
parses the body again and answers as TF Serving would.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import simdjson

_KEYS = frozenset({"instances", "signature_name"})
_OPEN = ord("[")


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
    if shape is None or not _regular(instances, shape, 0):
        return None
    # Every array down to the numbers' level has its length; one more '[' anywhere is an array
    # among the numbers, which the flattening below would hide (or a '[' in a string: general).
    opened = int(np.count_nonzero(np.frombuffer(body, np.uint8) == _OPEN))  # 3x bytes.count
    if opened != sum(math.prod(shape[:level]) for level in range(len(shape))):
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


def _regular(value: Any, shape: list[int], level: int) -> bool:
    """Whether every array at every level has the length ``shape`` says.

    Plain loops: this walks thousands of arrays per request. A number where an array belongs
    has no ``len`` (TypeError); a string or object of the right length fails ``as_buffer``.
    """
    size = shape[level + 1]
    try:
        if level + 2 == len(shape):  # the arrays of numbers
            for item in value:  # noqa: SIM110 - all() over a generator measured 1.6x slower here
                if len(item) != size:
                    return False
            return True
        for item in value:
            if len(item) != size or not _regular(item, shape, level + 1):
                return False
    except TypeError:
        return False
    return True
