"""The Open Inference Protocol door's fast JSON path reads requests as the general path would."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.web.oip_json import InferRequestReader

_numbers = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000)
_leaves = _numbers | st.booleans() | st.none() | st.text(max_size=3)
_data = st.lists(_numbers, max_size=6) | st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=3), max_leaves=12
)
_fields = st.fixed_dictionaries(
    {"name": st.sampled_from(["face", "x[y"]), "datatype": st.sampled_from(["UINT8", "FP32"])},
    optional={
        "shape": st.lists(st.integers(0, 4), max_size=4),
        "parameters": st.dictionaries(st.sampled_from(["a", "b"]), _leaves | st.lists(_leaves)),
    },
)
_extras = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=4),
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["label", "p"])})),
        "parameters": st.dictionaries(st.sampled_from(["binary_data_output"]), st.booleans()),
    },
)


def _general(data: Any) -> np.ndarray | None:
    """The general path's numbers: numpy's reading of ``data``, or None where it refuses."""
    try:
        return np.asarray(data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(text for item in value.values() for text in _strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


@settings(max_examples=400)
@given(fields=_fields, data=_data, extras=_extras)
def test_the_fast_path_agrees_with_orjson_and_numpy_or_steps_aside(
    fields: dict[str, Any], data: Any, extras: dict[str, Any]
) -> None:
    body = json.dumps({**extras, "inputs": [{**fields, "data": data}]}).encode()
    read = InferRequestReader().read(body)
    expected = _general(data)
    flat = isinstance(data, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in data
    )
    if read is None:  # the general path answers; it must not have to for a plain request
        assert not flat or any("[" in text for text in _strings([fields, extras])), body
        return
    assert expected is not None, body
    request, values = read
    document = orjson.loads(body)
    del document["inputs"][0]["data"]
    assert request == document
    np.testing.assert_array_equal(values, expected)


def test_a_camera_face_in_json_is_read_on_the_fast_path() -> None:
    face = np.random.default_rng(2).integers(0, 256, 4096)
    body = orjson.dumps(
        {
            "id": "r-1",
            "inputs": [
                {
                    "name": "face",
                    "shape": [1, 64, 64, 1],
                    "datatype": "UINT8",
                    "data": face.tolist(),
                }
            ],
            "outputs": [{"name": "probabilities"}],
        }
    )
    read = InferRequestReader().read(body)
    assert read is not None
    request, values = read
    assert request["inputs"] == [{"name": "face", "shape": [1, 64, 64, 1], "datatype": "UINT8"}]
    assert request["id"] == "r-1"
    np.testing.assert_array_equal(values, face)


def test_what_numpy_refuses_or_reads_otherwise_goes_to_the_general_path() -> None:
    reader = InferRequestReader()
    for body in (
        b'{"inputs":[{"name":"face","data":[[1],2]}]}',
        b'{"inputs":[{"name":"face","data":[[1,2],[3]]}]}',
        b'{"inputs":[{"name":"face","data":[1,"2"]}]}',
        b'{"inputs":[{"name":"face","data":[1,true]}]}',
        b'{"inputs":[{"name":"face","data":[1,2]},{"name":"face","data":[3]}]}',
        b'{"inputs":[{"name":"face","data":[1,2],"data":[3,[4]]}]}',
        b'{"id":"a","id":"b","inputs":[{"name":"face","data":[1,2]}]}',
        b'{"inputs":[{"name":"face","data":3}]}',
        b'{"inputs":[{"name":"face"}]}',
        b'["inputs"]',
        b'{"parameters":{"a":' + b"[" * 900 + b"]" * 900 + b'},"inputs":[{"data":[1]}]}',
        b"{not json",
    ):
        assert reader.read(body) is None, body
    assert reader.read(b'{"inputs":[{"data":[1]}]}') is not None  # the parser is still usable
