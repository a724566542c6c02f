"""The one container-runtime call edgecore 1.4 makes with edged disabled: ``Version``.

edgecore v1.4.0 builds edged even when it is disabled (``edge/cmd/edgecore/app/server.go``
registers it unconditionally) and exits unless a CRI runtime answers
``runtime.v1alpha2.RuntimeService/Version`` on ``remoteRuntimeEndpoint``. This answers that call
and nothing else (every other method: UNIMPLEMENTED), so no container runtime is needed.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc

_METHOD = "/runtime.v1alpha2.RuntimeService/Version"


def _string_field(number: int, value: str) -> bytes:
    data = value.encode()
    if len(data) >= 128:
        raise ValueError(value)
    return bytes([number << 3 | 2, len(data)]) + data


# VersionResponse (k8s.io/cri-api v1alpha2 api.proto): version = 1, runtime_name = 2,
# runtime_version = 3, runtime_api_version = 4.
VERSION_RESPONSE = (
    _string_field(1, "0.1.0")
    + _string_field(2, "kubeedge-sim")
    + _string_field(3, "0.1.0")
    + _string_field(4, "v1alpha2")
)


class _Handler(grpc.GenericRpcHandler):  # type: ignore[misc] # grpc is untyped
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        if handler_call_details.method != _METHOD:
            return None
        return grpc.unary_unary_rpc_method_handler(
            lambda _request, _context: VERSION_RESPONSE,
            request_deserializer=lambda data: data,
            response_serializer=lambda data: data,
        )


def serve_version(socket_path: str) -> grpc.Server:
    """Start answering ``Version`` on the Unix socket ``socket_path``; stop() the result."""
    server = grpc.server(futures.ThreadPoolExecutor(1))
    server.add_generic_rpc_handlers((_Handler(),))
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    return server
