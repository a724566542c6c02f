from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_UINT8: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    STATUS_OK: _ClassVar[Status]
    STATUS_INVALID_ARGUMENT: _ClassVar[Status]
    STATUS_RESOURCE_EXHAUSTED: _ClassVar[Status]
    STATUS_UNAVAILABLE: _ClassVar[Status]
    STATUS_DEADLINE_EXCEEDED: _ClassVar[Status]
    STATUS_INTERNAL: _ClassVar[Status]

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_EDGE: _ClassVar[Source]
    SOURCE_CLOUD: _ClassVar[Source]

class Normalization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_UNSPECIFIED: _ClassVar[Normalization]
    NORMALIZATION_UNIT: _ClassVar[Normalization]
    NORMALIZATION_SYMMETRIC: _ClassVar[Normalization]
    NORMALIZATION_NONE: _ClassVar[Normalization]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_UINT8: DataType
DATA_TYPE_FLOAT32: DataType
STATUS_UNSPECIFIED: Status
STATUS_OK: Status
STATUS_INVALID_ARGUMENT: Status
STATUS_RESOURCE_EXHAUSTED: Status
STATUS_UNAVAILABLE: Status
STATUS_DEADLINE_EXCEEDED: Status
STATUS_INTERNAL: Status
SOURCE_UNSPECIFIED: Source
SOURCE_EDGE: Source
SOURCE_CLOUD: Source
NORMALIZATION_UNSPECIFIED: Normalization
NORMALIZATION_UNIT: Normalization
NORMALIZATION_SYMMETRIC: Normalization
NORMALIZATION_NONE: Normalization

class Tensor(_message.Message):
    __slots__ = ("shape", "dtype", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DataType
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DataType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("pixels", "box")
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    pixels: Tensor
    box: BoundingBox
    def __init__(self, pixels: _Optional[_Union[Tensor, _Mapping]] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ...) -> None: ...

class InferenceRequest(_message.Message):
    __slots__ = ("request_id", "device_id", "captured_at_ms", "faces", "share_for_training")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    SHARE_FOR_TRAINING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    device_id: str
    captured_at_ms: int
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    share_for_training: bool
    def __init__(self, request_id: _Optional[str] = ..., device_id: _Optional[str] = ..., captured_at_ms: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., share_for_training: _Optional[bool] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class FaceResult(_message.Message):
    __slots__ = ("label", "class_index", "confidence", "probabilities", "source", "fallback", "hard", "model")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    label: str
    class_index: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    source: Source
    fallback: str
    hard: bool
    model: ModelRef
    def __init__(self, label: _Optional[str] = ..., class_index: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ..., source: _Optional[_Union[Source, str]] = ..., fallback: _Optional[str] = ..., hard: _Optional[bool] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_us", "inference_us", "total_us", "batch_size")
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    queue_us: int
    inference_us: int
    total_us: int
    batch_size: int
    def __init__(self, queue_us: _Optional[int] = ..., inference_us: _Optional[int] = ..., total_us: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class InferenceResponse(_message.Message):
    __slots__ = ("request_id", "device_id", "status", "error", "model", "results", "timings", "captured_at_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    device_id: str
    status: Status
    error: str
    model: ModelRef
    results: _containers.RepeatedCompositeFieldContainer[FaceResult]
    timings: Timings
    captured_at_ms: int
    def __init__(self, request_id: _Optional[str] = ..., device_id: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., error: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[FaceResult, _Mapping]]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., captured_at_ms: _Optional[int] = ...) -> None: ...

class InputSpec(_message.Message):
    __slots__ = ("height", "width", "channels", "dtype", "normalization")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    channels: int
    dtype: DataType
    normalization: Normalization
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ..., dtype: _Optional[_Union[DataType, str]] = ..., normalization: _Optional[_Union[Normalization, str]] = ...) -> None: ...

class ServiceInfo(_message.Message):
    __slots__ = ("runtime_id", "model", "input", "labels", "max_batch", "max_faces_per_request", "max_payload_bytes", "max_face_side", "request_topic_filter")
    RUNTIME_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FACE_SIDE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TOPIC_FILTER_FIELD_NUMBER: _ClassVar[int]
    runtime_id: str
    model: ModelRef
    input: InputSpec
    labels: _containers.RepeatedScalarFieldContainer[str]
    max_batch: int
    max_faces_per_request: int
    max_payload_bytes: int
    max_face_side: int
    request_topic_filter: str
    def __init__(self, runtime_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., input: _Optional[_Union[InputSpec, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., max_batch: _Optional[int] = ..., max_faces_per_request: _Optional[int] = ..., max_payload_bytes: _Optional[int] = ..., max_face_side: _Optional[int] = ..., request_topic_filter: _Optional[str] = ...) -> None: ...
