"""A camera's own control and status topics: what a camera mapper bridges to KubeEdge twins.

Cameras do not speak KubeEdge. Each has two topics under the application root:

- ``<root>/<camera>/control`` (mapper → camera, QoS 1, retained): JSON with any of
  ``capture_fps`` (number > 0) and ``enabled`` (boolean), the desired settings.
- ``<root>/<camera>/status`` (camera → mapper, QoS 1, retained, also the Last Will with
  ``state: offline``): JSON with ``state`` (``online``/``offline``) and the actual
  ``capture_fps``, ``enabled``, ``model_version``, ``last_emotion``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

ONLINE = "online"
OFFLINE = "offline"


class CameraMessageError(ValueError):
    """A control or status message that does not follow this contract."""


def control_topic(root: str, camera: str) -> str:
    """Where a camera reads its desired settings."""
    return f"{root}/{camera}/control"


def status_topic(root: str, camera: str) -> str:
    """Where a camera publishes its actual settings and state."""
    return f"{root}/{camera}/status"


def status_filter(root: str) -> str:
    """Subscription filter for every camera's status."""
    return f"{root}/+/status"


def camera_of(root: str, topic: str, suffix: str) -> str | None:
    """The ``<camera>`` of ``<root>/<camera>/<suffix>``, else ``None``."""
    prefix, tail = f"{root}/", f"/{suffix}"
    if not topic.startswith(prefix) or not topic.endswith(tail):
        return None
    camera = topic[len(prefix) : -len(tail)]
    return camera if camera and "/" not in camera and camera != "runtime" else None


def _object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CameraMessageError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CameraMessageError("not a JSON object")
    return data


def parse_fps(value: object) -> float:
    """A capture rate from a number or a twin string; must be finite and > 0."""
    if isinstance(value, bool):
        raise CameraMessageError(f"capture_fps is not a number: {value!r}")
    try:
        fps = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CameraMessageError(f"capture_fps is not a number: {value!r}") from exc
    if not math.isfinite(fps) or fps <= 0:
        raise CameraMessageError(f"capture_fps must be > 0: {value!r}")
    return fps


def parse_enabled(value: object) -> bool:
    """A boolean from JSON or a KubeEdge boolean twin string (``true``/``false``)."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise CameraMessageError(f"enabled must be true or false: {value!r}")


@dataclass(frozen=True, slots=True)
class CameraControl:
    """Desired camera settings; ``None`` leaves a setting as it is."""

    capture_fps: float | None = None
    enabled: bool | None = None

    def encode(self) -> bytes:
        """The control JSON (unset settings omitted)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> CameraControl:
        """Parse a control message.

        Raises:
            CameraMessageError: if it is not a JSON object with valid settings.
        """
        data = _object(payload)
        fps = data.get("capture_fps")
        enabled = data.get("enabled")
        return cls(
            None if fps is None else parse_fps(fps),
            None if enabled is None else parse_enabled(enabled),
        )


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """What a camera reports about itself."""

    state: str
    capture_fps: float | None = None
    enabled: bool | None = None
    model_version: str | None = None
    last_emotion: str | None = None

    def encode(self) -> bytes:
        """The status JSON (unknown fields omitted)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> CameraStatus:
        """Parse a status message.

        Raises:
            CameraMessageError: if it is not a JSON object with a valid state and fields.
        """
        data = _object(payload)
        state = data.get("state")
        if state not in (ONLINE, OFFLINE):
            raise CameraMessageError(f"state must be online or offline: {state!r}")
        fps, enabled = data.get("capture_fps"), data.get("enabled")
        strings = {}
        for key in ("model_version", "last_emotion"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise CameraMessageError(f"{key} must be a string: {value!r}")
            strings[key] = value
        return cls(
            state,
            None if fps is None else parse_fps(fps),
            None if enabled is None else parse_enabled(enabled),
            **strings,
        )
