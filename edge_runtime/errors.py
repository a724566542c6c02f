"""Exceptions raised on purpose by the edge runtime.

The tree::

    EdgeError
    ├── ConfigError            a setting is missing or invalid (names the key)
    ├── MissingDependency      an optional extra is not installed
    ├── TransportError
    │   └── BrokerUnavailable  the MQTT broker cannot be reached
    ├── PayloadError           a request cannot be decoded or fails validation
    ├── ModelError
    │   └── ModelRejected      a model version failed verification or validation
    └── InferenceError         running a batch failed
        └── Overloaded         the batch queue is full
"""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error this distribution raises on purpose."""


class ConfigError(EdgeError):
    """A setting is invalid.

    Args:
        key: Dotted setting name, for example ``batch.max_size``.
        value: The offending value as given.
        reason: What is wrong with it.
    """

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"setting {key}={value!r}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


class MissingDependency(EdgeError):
    """An optional dependency is not installed; the message names the extra."""


class TransportError(EdgeError):
    """MQTT transport failure."""


class BrokerUnavailable(TransportError):
    """The broker could not be reached or refused the connection."""


class PayloadError(EdgeError):
    """A request payload is malformed; the message is safe to send back to the device.

    Args:
        message: What is wrong, precisely.
        reason: Short metric label (``decode``, ``device_mismatch``, ``no_faces``, ...).
        request_id: The request's id when the payload parsed far enough to have one, so
            the device can match the error to its request.
    """

    def __init__(self, message: str, reason: str = "invalid", request_id: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.request_id = request_id


class ModelError(EdgeError):
    """A model could not be found or loaded."""


class ModelRejected(ModelError):
    """A model version failed verification or validation.

    Args:
        version: The version that was refused.
        reason: Short reason, safe for a KubeEdge twin value after sanitising.
    """

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"model {version} rejected: {reason}")
        self.version = version
        self.reason = reason


class InferenceError(EdgeError):
    """Running a batch through the model failed."""


class Overloaded(InferenceError):
    """The batch queue is full; the request was not accepted."""
