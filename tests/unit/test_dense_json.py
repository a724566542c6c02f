"""The TF Serving door's fast JSON path takes only what the general path would read the same."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.web.dense_json import DenseInstances

_numbers = st.floats(-1e6, 1e6, allow_nan=False, width=32) | st.integers(-1000, 1000)
_leaves = _numbers | st.booleans() | st.none() | st.text(max_size=3)
_nested = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=40)


def _general(document: Any) -> np.ndarray | None:
    """What numpy makes of the instances when they are a dense tensor of numbers."""
    try:
        array = np.array(document["instances"])
    except (ValueError, TypeError, KeyError):
        return None
    return array if array.dtype.kind in "fiu" and array.ndim >= 2 else None


@settings(max_examples=400)
@given(instances=_nested, signature=st.none() | st.sampled_from(["", "serving_default", "x[y"]))
def test_the_fast_path_agrees_with_numpy_or_steps_aside(instances: Any, signature: Any) -> None:
    document: dict[str, Any] = {"instances": instances}
    if signature is not None:
        document["signature_name"] = signature
    body = json.dumps(document).encode()
    read = DenseInstances().read(body)
    expected = _general(document)
    if read is None:
        return  # the general path answers (its messages are TF Serving's)
    assert expected is not None, body
    array, name = read
    assert name == (signature or "")
    np.testing.assert_array_equal(array, expected.astype(np.float32))


def test_the_reference_apps_request_is_read_on_the_fast_path() -> None:
    face = np.random.default_rng(1).integers(0, 256, (48, 48, 3)) / 255.0
    body = json.dumps({"instances": [face.tolist()]}, separators=(",", ":")).encode()
    read = DenseInstances().read(body)
    assert read is not None
    np.testing.assert_array_equal(read[0], face[np.newaxis].astype(np.float32))


def test_ragged_or_deeper_arrays_go_to_the_general_path() -> None:
    reader = DenseInstances()
    for body in (
        b'{"instances":[[[1,2],[3]]]}',
        b'{"instances":[[[1,2],[3,[4]]]]}',
        b'{"instances":[[[1,2],[[3],4]]]}',
        b'{"instances":[[[1,2],[3,4,5],[6]]]}',
        b'{"instances":[[[1,2],"ab"]]}',
        b'{"instances":[[[1,2],[3,true]]]}',
        b'{"instances":[[[1,2],[3,4]]],"inputs":1}',
        b'{"instances":[]}',
        b"{not json",
    ):
        assert reader.read(body) is None, body
