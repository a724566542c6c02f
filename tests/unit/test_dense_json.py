"""The TF Serving door's fast JSON path takes only what the general path would read the same."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.web import dense_json
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


@st.composite
def _nearly_dense(draw: st.DrawFn) -> Any:
    """A dense tensor, or one with a single array grown, shrunk, emptied, deepened or made a
    number (which may leave it dense, of another shape)."""
    shape = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    tensor = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).tolist()
    if not draw(st.booleans()):
        return tensor
    path = [draw(st.integers(0, length - 1)) for length in shape[:-1]]
    parent = tensor
    for index in path[:-1]:
        parent = parent[index]
    change = draw(st.sampled_from(["grow", "shrink", "empty", "deepen", "number"]))
    target = parent[path[-1]]
    if change == "grow":
        target.append(7.0)
    elif change == "shrink":
        target.pop()
    elif change == "empty":
        target.clear()
    elif change == "deepen":
        target[0] = [target[0]]
    else:
        parent[path[-1]] = 7.0
    return tensor


@settings(max_examples=400)
@given(tensor=_nearly_dense(), blanks=st.booleans())
def test_dense_tensors_take_the_fast_path_and_one_irregular_array_does_not(
    tensor: Any, blanks: bool
) -> None:
    separators = (", ", ": ") if blanks else (",", ":")
    body = json.dumps({"instances": tensor}, separators=separators).encode()
    read = DenseInstances().read(body)
    expected = _general({"instances": tensor})
    if expected is None or expected.size == 0:
        assert read is None, body  # empty: the general path answers as TF Serving does
    else:
        assert read is not None, body
        np.testing.assert_array_equal(read[0], expected.astype(np.float32))


def test_a_body_naming_a_tensor_larger_than_itself_is_refused_at_once() -> None:
    """The shape is read from each level's first array: 1000 x 1000 x 1000 here, in 12 kB,
    whose skeleton would take 2 GB."""
    first = [[0] * 1000] + [[0]] * 999
    body = json.dumps({"instances": [first] + [[[0]]] * 999}, separators=(",", ":")).encode()
    assert len(body) < 20_000
    dense_json._skeleton.cache_clear()
    assert DenseInstances().read(body) is None
    assert dense_json._skeleton.cache_info().currsize == 0  # refused before it was built


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
        b'{"instances":[[[1,2],[3,4]]],"signature_name":"]["}',
        b'{"signature_name":"[","instances":[[[1,2],[3,4]]]}',
        b'{"instances":[[[1,2],[3,4]],[[5,6],[]]]}',
        b'{"instances":[]}',
        b"{not json",
    ):
        assert reader.read(body) is None, body
