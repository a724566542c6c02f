from edgeinfer.v1 import inference_pb2 as _inference_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HardExample(_message.Message):
    __slots__ = ("device_id", "request_id", "face_index", "captured_at_ms", "pixels", "labels", "edge_model", "edge_probabilities", "cloud_model", "cloud_probabilities", "fallback", "rule")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    EDGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    EDGE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    CLOUD_MODEL_FIELD_NUMBER: _ClassVar[int]
    CLOUD_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    request_id: str
    face_index: int
    captured_at_ms: int
    pixels: _inference_pb2.Tensor
    labels: _containers.RepeatedScalarFieldContainer[str]
    edge_model: _inference_pb2.ModelRef
    edge_probabilities: _containers.RepeatedScalarFieldContainer[float]
    cloud_model: _inference_pb2.ModelRef
    cloud_probabilities: _containers.RepeatedScalarFieldContainer[float]
    fallback: str
    rule: str
    def __init__(self, device_id: _Optional[str] = ..., request_id: _Optional[str] = ..., face_index: _Optional[int] = ..., captured_at_ms: _Optional[int] = ..., pixels: _Optional[_Union[_inference_pb2.Tensor, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., edge_model: _Optional[_Union[_inference_pb2.ModelRef, _Mapping]] = ..., edge_probabilities: _Optional[_Iterable[float]] = ..., cloud_model: _Optional[_Union[_inference_pb2.ModelRef, _Mapping]] = ..., cloud_probabilities: _Optional[_Iterable[float]] = ..., fallback: _Optional[str] = ..., rule: _Optional[str] = ...) -> None: ...
