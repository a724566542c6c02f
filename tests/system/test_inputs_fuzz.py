"""Property-based fuzzing of every other input from outside: KubeEdge twin messages, DMI messages,
model manifests, the camera's status and control messages, and the runtime's twin path.

Each parser either returns a value or raises its own documented error; nothing else escapes.
(Request payloads: tests/edge_runtime/test_codec_fuzz.py.)
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.errors import ModelRejected
from edge_runtime.manifest import parse_manifest
from edge_runtime.model_sync import DesiredModel
from edgeinfer import camera
from kubeedge_twin import DeviceRef, Layout, TwinClient, TwinFormatError, TwinTopics
from kubeedge_twin.dmi.mapper import desired_of
from kubeedge_twin.dmi.v1beta1 import api_pb2 as pb
from kubeedge_twin.messages import Delta, TwinMessage
from kubeedge_twin.topics import TWIN_GET_RESULT, TWIN_UPDATE_DELTA, TWIN_UPDATE_RESULT

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=25,
)
TWIN_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "expected": st.fixed_dictionaries({}, optional={"value": JSON, "metadata": JSON}) | JSON,
        "actual": st.fixed_dictionaries({}, optional={"value": JSON}) | JSON,
        "optional": JSON,
        "metadata": st.fixed_dictionaries({}, optional={"type": JSON}) | JSON,
        "expected_version": JSON,
        "actual_version": JSON,
    },
)
TWIN_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "event_id": JSON,
        "timestamp": JSON,
        "twin": st.dictionaries(st.text(max_size=12), TWIN_ENTRY | JSON, max_size=4) | JSON,
        "delta": st.dictionaries(st.text(max_size=12), JSON, max_size=4) | JSON,
        "code": JSON,
        "reason": JSON,
    },
)


def _bytes_of(document: object) -> bytes:
    return json.dumps(document).encode()


@given(TWIN_DOCUMENT | JSON)
def test_twin_messages_parse_or_raise_twin_format_error(document: object) -> None:
    payload = _bytes_of(document)
    for parse in (TwinMessage.decode, Delta.decode):
        with contextlib.suppress(TwinFormatError):
            parse(payload)


@given(st.binary(max_size=200))
def test_twin_message_bytes_parse_or_raise_twin_format_error(payload: bytes) -> None:
    for parse in (TwinMessage.decode, Delta.decode):
        with contextlib.suppress(TwinFormatError):
            parse(payload)


@given(
    TWIN_DOCUMENT | JSON, st.sampled_from([TWIN_UPDATE_DELTA, TWIN_GET_RESULT, TWIN_UPDATE_RESULT])
)
def test_the_twin_client_takes_any_message_and_counts_the_bad_ones(document, suffix) -> None:
    """What the runtime and the mappers do with $hw/... messages: never raise."""
    topics = TwinTopics(Layout.V1_4)
    client = TwinClient(DeviceRef("rt"), topics=topics, publish=lambda _t, _p: None)  # type: ignore[arg-type,return-value]
    assert client.handle(topics.topic(DeviceRef("rt"), suffix), _bytes_of(document))


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=80), max_size=6))
def test_desired_model_values_of_any_shape(desired: dict[str, str]) -> None:
    wanted = DesiredModel.from_twin(desired)
    if wanted is not None:
        assert wanted.version


@given(st.binary(max_size=400))
def test_dmi_devices_from_arbitrary_bytes(payload: bytes) -> None:
    """RegisterDevice/UpdateDevice bodies: protobuf either parses or raises DecodeError, and a
    parsed Device always yields a desired map (gRPC itself refuses undecodable bodies)."""
    from google.protobuf.message import DecodeError

    try:
        device = pb.Device.FromString(payload)
    except DecodeError:
        return
    values = desired_of(device)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


MANIFEST = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON,
        "version": JSON,
        "input": st.fixed_dictionaries(
            {}, optional={"height": JSON, "width": JSON, "channels": JSON, "normalization": JSON}
        )
        | JSON,
        "labels": st.lists(st.text(max_size=8), max_size=8) | JSON,
        "files": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "path": st.text(max_size=30) | JSON,
                    "sha256": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64) | JSON,
                    "format": JSON,
                    "variant": JSON,
                },
            ),
            max_size=3,
        )
        | JSON,
    },
)


@given(MANIFEST | JSON)
def test_manifests_parse_or_are_rejected(document: object) -> None:
    try:
        manifest = parse_manifest(_bytes_of(document), Path("/nonexistent"))
    except ModelRejected:
        return
    for entry in manifest.files:
        assert not Path(entry.path).is_absolute()
        assert ".." not in Path(entry.path).parts


@given(st.binary(max_size=100))
def test_manifest_bytes_parse_or_are_rejected(payload: bytes) -> None:
    with contextlib.suppress(ModelRejected):
        parse_manifest(payload, Path("/nonexistent"))


CAMERA_DOC = st.fixed_dictionaries(
    {},
    optional={
        "state": JSON,
        "capture_fps": JSON,
        "enabled": JSON,
        "model_version": JSON,
        "last_emotion": JSON,
    },
)


@given(CAMERA_DOC | JSON)
def test_camera_messages_parse_or_raise_their_error(document: object) -> None:
    payload = _bytes_of(document)
    for parse in (camera.CameraStatus.decode, camera.CameraControl.decode):
        with contextlib.suppress(camera.CameraMessageError):
            parse(payload)


@given(st.binary(max_size=100))
def test_camera_message_bytes_parse_or_raise_their_error(payload: bytes) -> None:
    for parse in (camera.CameraStatus.decode, camera.CameraControl.decode):
        with contextlib.suppress(camera.CameraMessageError):
            parse(payload)
