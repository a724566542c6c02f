import datetime

from edgeinfer.v1 import inference_pb2 as _inference_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelFile(_message.Message):
    __slots__ = ("path", "sha256", "size_bytes", "format", "variant", "metrics", "offload_scores")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class OffloadScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ScoreQuantiles
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ScoreQuantiles, _Mapping]] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_SCORES_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    size_bytes: int
    format: str
    variant: str
    metrics: _containers.ScalarMap[str, float]
    offload_scores: _containers.MessageMap[str, ScoreQuantiles]
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., format: _Optional[str] = ..., variant: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., offload_scores: _Optional[_Mapping[str, ScoreQuantiles]] = ...) -> None: ...

class ScoreQuantiles(_message.Message):
    __slots__ = ("at_percent",)
    AT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    at_percent: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, at_percent: _Optional[_Iterable[float]] = ...) -> None: ...

class ModelManifest(_message.Message):
    __slots__ = ("name", "version", "files", "input", "labels", "metrics", "parent_version", "dataset_fingerprint", "created_at", "description", "calibration_set")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_SET_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    files: _containers.RepeatedCompositeFieldContainer[ModelFile]
    input: _inference_pb2.InputSpec
    labels: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.ScalarMap[str, float]
    parent_version: str
    dataset_fingerprint: str
    created_at: _timestamp_pb2.Timestamp
    description: str
    calibration_set: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., files: _Optional[_Iterable[_Union[ModelFile, _Mapping]]] = ..., input: _Optional[_Union[_inference_pb2.InputSpec, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., parent_version: _Optional[str] = ..., dataset_fingerprint: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., calibration_set: _Optional[str] = ...) -> None: ...
