"""Edge inference runtime for KubeEdge: MQTT in, batched LiteRT/TensorFlow inference, MQTT out."""

from edge_runtime.client import AnswerTimeout, InferenceClient, RetryPolicy
from edge_runtime.codec import (
    decode_response,
    decode_service_info,
    encode_request,
    encode_response,
)
from edge_runtime.errors import EdgeError, PayloadError
from edge_runtime.messages import (
    FacePixels,
    FaceResult,
    InputSpec,
    ModelRef,
    Normalization,
    Request,
    Response,
    ServiceInfo,
    Source,
    Status,
    WireFormat,
)
from edge_runtime.runtime import Runtime
from edge_runtime.settings import Settings, load_settings
from edge_runtime.transport import Credentials, InboundMessage, MqttTransport, Will
from edgeinfer.topics import CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, Topics

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "AnswerTimeout",
    "Credentials",
    "EdgeError",
    "FacePixels",
    "FaceResult",
    "InboundMessage",
    "InferenceClient",
    "InputSpec",
    "ModelRef",
    "MqttTransport",
    "Normalization",
    "PayloadError",
    "Request",
    "Response",
    "RetryPolicy",
    "Runtime",
    "ServiceInfo",
    "Settings",
    "Source",
    "Status",
    "Topics",
    "Will",
    "WireFormat",
    "decode_response",
    "decode_service_info",
    "encode_request",
    "encode_response",
    "load_settings",
]
