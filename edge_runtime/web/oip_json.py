"""The Open Inference Protocol door's fast path: the input's numbers straight from the JSON bytes.

A JSON request carries its face as 4,096 numbers (or 6,912) in ``inputs[0].data``. orjson made
each a Python int and numpy walked them again: 0.4 ms of a request's 1.3 ms on the event loop
(bench/results/profiles/oip-door.md). pysimdjson copies them into one buffer in C instead,
and only the small rest of the request becomes Python objects.

``data`` may be nested in the protocol; numpy rejects ragged nesting where the buffer would
flatten it silently, so any array inside ``data`` (counted by its '[') sends the request to
the door's general path, as does anything else this path does not read as it is: no single
input, a ``data`` that is not an array of numbers, a bracket in a string, nesting deeper than
Python's recursion limit, a parse error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import simdjson

from edge_runtime.web.tensors import Json

_OPEN = b"["


class InferRequestReader:
    """Reads an inference request's JSON part.

    One parser, reused: call from one thread, and keep nothing it returns but its results.
    """

    def __init__(self) -> None:
        self._parser = simdjson.Parser()

    def read(self, part: bytes) -> tuple[dict[str, Json], npt.NDArray[np.float64]] | None:
        """The request without its one input's ``data``, and those numbers; or None."""
        try:
            document = self._parser.parse(part)
        except (ValueError, RuntimeError):
            return None
        try:
            return _read(document, part)
        except RecursionError:  # arrays nested hundreds deep in the request's other fields
            return None
        finally:
            del document  # the parser is reused only once nothing refers to its document


def _read(document: Any, part: bytes) -> tuple[dict[str, Json], npt.NDArray[np.float64]] | None:
    if not isinstance(document, simdjson.Object):
        return None
    inputs = document.get("inputs")
    if not isinstance(inputs, simdjson.Array) or len(inputs) != 1:
        return None
    tensor = inputs[0]
    data = tensor.get("data") if isinstance(tensor, simdjson.Object) else None
    if not isinstance(data, simdjson.Array):
        return None
    try:
        values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):  # a string, a boolean, null, an object among the numbers
        return None
    # items() would make Python of every value, ``data`` too: by key, the arrays stay lazy.
    # A repeated key would read its first value here and its last in orjson.
    keys, fields = list(document.keys()), list(tensor.keys())
    if len(set(keys)) != len(keys) or len(set(fields)) != len(fields):
        return None
    request = {key: _python(document[key]) for key in keys if key != "inputs"}
    request["inputs"] = [{key: _python(tensor[key]) for key in fields if key != "data"}]
    # Every '[' belongs to an array of the request as read here, to ``inputs`` or to ``data``;
    # one more is an array inside ``data`` or a bracket in a string.
    if part.count(_OPEN) != _arrays(request) + 1:
        return None
    return request, values  # the buffer owns its copy of the numbers


def _python(value: Any) -> Json:
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _arrays(value: Json) -> int:
    if isinstance(value, dict):
        return sum(_arrays(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_arrays(item) for item in value)
    return 0
