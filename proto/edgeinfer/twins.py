"""Twin property names of our KubeEdge devices: the contract between code and Device YAML.

The inference-service device (one per edge runtime) carries the model to serve; a camera
device carries its capture settings and what it sees. ``deploy/kubeedge`` declares exactly these.
"""

from __future__ import annotations

from typing import Final

# The inference-service device: desired by the cloud, reported by the runtime.
MODEL_VERSION: Final = "model_version"
MODEL_URI: Final = "model_uri"
MODEL_SHA256: Final = "model_sha256"
MODEL_SIGNATURE: Final = "model_signature"
MODEL_STATUS: Final = "model_status"  # reported only: serving, loading or failed:<reason>
MODEL_TWINS: Final = (MODEL_VERSION, MODEL_URI, MODEL_SHA256, MODEL_SIGNATURE, MODEL_STATUS)

# The inference-service device's joint inference: the rule the cloud asks for (edgeinfer.hardness
# Rule: "margin,rate:0.2"), the rule in force and the share of faces found hard since the last
# report (reported).
OFFLOAD_POLICY: Final = "offload_policy"
OFFLOAD_RATE: Final = "offload_rate"  # reported only
OFFLOAD_TWINS: Final = (OFFLOAD_POLICY, OFFLOAD_RATE)
RUNTIME_TWINS: Final = MODEL_TWINS + OFFLOAD_TWINS

# A camera device: the cloud sets capture_fps and enabled; the camera reports everything.
CAPTURE_FPS: Final = "capture_fps"
ENABLED: Final = "enabled"
LAST_EMOTION: Final = "last_emotion"
EMOTION_COUNTS: Final = "emotion_counts"
CAMERA_DESIRED: Final = (CAPTURE_FPS, ENABLED)
CAMERA_REPORTED: Final = (CAPTURE_FPS, ENABLED, MODEL_VERSION, LAST_EMOTION, EMOTION_COUNTS)
# KubeEdge twin types (metadata.type) of the camera's twins.
CAMERA_TWIN_TYPES: Final = {
    CAPTURE_FPS: "float",
    ENABLED: "boolean",
    MODEL_VERSION: "string",
    LAST_EMOTION: "string",
    EMOTION_COUNTS: "string",
}
