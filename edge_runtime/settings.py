"""Runtime settings: defaults < YAML file < ``EDGE_*`` environment < command-line flags.

This is the only module that reads the environment. Every setting is declared once, as a
field of a frozen dataclass with its help text; the environment names, flags, YAML keys,
``--help`` and the README's configuration table all derive from these declarations.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from edge_runtime.errors import ConfigError
from edgeinfer.broker import Broker
from edgeinfer.hardness import Policy
from kubeedge_twin.versions import KubeEdge

_LOGGER = logging.getLogger(__name__)

ENV_PREFIX = "EDGE_"

_SEGMENT = re.compile(r"^[a-zA-Z0-9_.:@-]{1,128}$")


class BackendKind(enum.StrEnum):
    """Which inference engine runs the model."""

    LITERT = "litert"
    TF = "tf"


class TwinTransport(enum.StrEnum):
    """How the runtime hears its desired twin values."""

    MQTT = "mqtt"  # KubeEdge 1.4-1.14: $hw/... deltas on the broker
    DMI = "dmi"  # KubeEdge 1.15+: edgecore calls the runtime as the mapper of its protocol


class TwinLayout(enum.StrEnum):
    """KubeEdge DeviceTwin topic layout."""

    V1_4 = "1.4"
    V1_17 = "1.17"


def setting(default: Any, help_text: str, *, flag: str | None = None) -> Any:
    """Declare a setting field with its help text and an optional short flag alias."""
    return field(default=default, metadata={"help": help_text, "flag": flag})


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the MQTT broker (edgecore's EventBus broker)."""

    broker: str = setting(
        "mqtt://127.0.0.1:1883",
        "Broker URL, mqtt://host:port or mqtts://host:port (TLS); empty: no MQTT door, the "
        "HTTP doors only (the cloud's inference service; needs http.port, and a twin, if "
        "any, over DMI).",
        flag="--broker",
    )
    client_id: str = setting(
        "",
        "MQTT client id; empty means edge-runtime-<runtime_id>. Keep it stable: "
        "the persistent session is keyed by it.",
    )
    username: str = setting("", "Broker user name (empty: anonymous).")
    password_file: str = setting(
        "", "File holding the broker password, e.g. a mounted Kubernetes Secret."
    )
    ca_file: str = setting("", "CA bundle for mqtts:// (empty: system CAs).")
    cert_file: str = setting("", "Client certificate for mutual TLS.")
    key_file: str = setting("", "Client private key for mutual TLS.")
    keepalive_s: int = setting(30, "MQTT keepalive interval.")
    session_expiry_s: int = setting(
        3600,
        "How long the broker keeps the session (and queues requests) while the runtime is away.",
    )
    connect_timeout_s: float = setting(10.0, "Give up a connection attempt after this.")
    reconnect_min_s: float = setting(0.5, "Smallest reconnect backoff (jittered).")
    reconnect_max_s: float = setting(30.0, "Largest reconnect backoff.")
    share_group: str = setting(
        "",
        "Run as one of several replicas sharing the requests through the MQTT v5 shared "
        "subscription $share/<group>/...; empty: one runtime takes all. Replicas use "
        "throw-away sessions (a dead replica's kept session would go on receiving its share).",
        flag="--share-group",
    )
    receive_maximum: int = setting(
        256,
        "MQTT v5 Receive Maximum: most requests the broker hands the runtime before it "
        "acknowledges some (flow control; the rest wait at the broker). Keep it at or below "
        "batch.max_queue, or a backlog overflows the queue as RESOURCE_EXHAUSTED.",
    )
    response_topic_filter: str = setting(
        "{root}/{device}/result/#",
        "Where a device may have its answers sent with an MQTT v5 Response Topic: a topic "
        "filter with {root} and {device} (the requesting device). Other Response Topics are "
        "ignored and the answer goes to the device's result topic; empty ignores them all. "
        "Keep it inside what the broker's ACL lets the runtime write.",
    )


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Which model to serve and how."""

    registry: str = setting(
        "models", "Model registry directory holding <name>/<version>/manifest.json."
    )
    name: str = setting("emotion", "Model name in the registry.")
    version: str = setting("", "Version to serve; empty means the newest registered.")
    path: str = setting(
        "",
        "Serve this model instead of the registry: a manifest.json, its directory, "
        "or a model file with manifest.json beside it.",
        flag="--model",
    )
    backend: BackendKind = setting(
        BackendKind.LITERT, "Inference engine: litert (TFLite) or tf (TensorFlow)."
    )
    variant: str = setting(
        "auto",
        "Which file of the version to run: auto (full int8 when the version has it: the "
        "trainer registers it only after the accuracy gate; else float32), float32, "
        "int8-dynamic, int8-full.",
    )
    threads: int = setting(
        2,
        "Interpreter threads; 0 chooses by measurement: every count from 1 to the cores (at "
        "most 4) is timed at warm-up and retried now and then while serving (LiteRT only; "
        "opt-in: in a back-to-back make bench it made p99 beside a busy neighbour and during "
        "a swap worse than 2).",
    )


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """Dynamic batching across devices."""

    max_size: int = setting(16, "Most faces in one batch.", flag="--max-batch")
    max_wait_s: float = setting(
        0.0,
        "Longest a face waits for its batch to fill; 0 batches what queued while the model "
        "was busy (measured best on CPU: bench/).",
        flag="--max-wait-s",
    )
    max_queue: int = setting(
        512, "Requests that may wait; beyond this RESOURCE_EXHAUSTED is answered."
    )
    request_timeout_s: float = setting(
        2.0, "A request queued longer than this is answered DEADLINE_EXCEEDED."
    )
    on_loop: bool = setting(
        True,
        "Run each batch on the event loop's thread: no thread hand-offs, lowest latency for "
        "small models (measured: bench/); false runs it on a worker thread so that I/O goes "
        "on during long inference.",
    )
    off_loop_when_busy: bool = setting(
        True,
        "With on_loop: while the event loop's thread is saturated by its own work (HTTP "
        "requests, JSON) more than by the model, try batches on the model's worker thread on "
        "one interpreter thread, and keep them there while that answers more faces a second "
        "(measured: the TF Serving door 872 -> 965 requests/s at 32 in flight; "
        "docs/benchmarks.md).",
    )


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Input limits; requests beyond them get INVALID_ARGUMENT."""

    max_payload_bytes: int = setting(1_048_576, "Largest request payload.")
    max_faces_per_request: int = setting(8, "Most faces in one request.")
    max_face_side: int = setting(512, "Largest face height or width before resizing.")
    answer_cache_size: int = setting(
        10_000,
        "OK answers kept per (device, request_id) so that a device's retry is answered again "
        "without running the model; 0 turns deduplication off.",
    )


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The HTTP endpoint for Prometheus metrics and probes."""

    host: str = setting("0.0.0.0", "Address the metrics server binds.")  # noqa: S104 - a pod serves probes on all interfaces
    port: int = setting(
        9464, "Port for /metrics, /healthz, /readyz; 0 disables.", flag="--metrics-port"
    )


class FloatRange(enum.StrEnum):
    """What float pixel values sent over HTTP mean."""

    UNIT = "unit"  # 0..1, pixel / 255: the reference Android app, most image pipelines
    BYTE = "byte"  # 0..255


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP front door: TF Serving REST, Open Inference Protocol, metrics and probes."""

    host: str = setting("0.0.0.0", "Address the HTTP server binds.")  # noqa: S104 - a pod serves on all interfaces
    token_file: str = setting(
        "",
        "A file holding a bearer token: when set, every /v1 and /v2 request must carry "
        "Authorization: Bearer <token> (else 401); probes and /metrics stay open. Give the "
        "cloud's inference service one, and its edges offload.token_file.",
    )
    port: int = setting(
        8501,
        "Port for TF Serving REST (/v1), the Open Inference Protocol (/v2), /metrics, "
        "/healthz and /readyz; 8501 is TF Serving's REST port; 0 disables.",
        flag="--http-port",
    )
    max_body_bytes: int = setting(
        16 * 1024 * 1024,
        "Largest HTTP request body (JSON text takes about 20 bytes per pixel value; the "
        "decoded faces obey the limits.* settings).",
    )
    float_range: FloatRange = setting(
        FloatRange.UNIT,
        "Float pixels in TF Serving requests and FP32 Open Inference Protocol tensors: unit "
        "(0..1, the reference app's pixel/255) or byte (0..255).",
    )
    tfserving_models: str = setting(
        "model_emotion=emotion",
        "TF Serving model names for registry models, name=registry_name[,...]; the "
        "served registry model also answers under its own name.",
    )
    tfserving_versions: str = setting(
        "4=serving",
        "TF Serving version numbers, number=registry_version[,...]: 'serving' is whichever "
        "version serves now (pushes follow it); a registry version answers only while it "
        "serves. The default is the version the reference app pins.",
    )
    tfserving_labels: str = setting(
        "", "TF Serving version labels, label=number[,...] (e.g. stable=4)."
    )


@dataclass(frozen=True, slots=True)
class TwinSettings:
    """KubeEdge device-twin synchronisation of the served model."""

    enabled: bool = setting(True, "Follow the desired model in the runtime's device twin.")
    kubeedge_version: str = setting(
        "1.4",
        "KubeEdge release of the edge node (1.4 ... 1.23): how desired values arrive (MQTT "
        "deltas up to 1.14, DMI from 1.15), the topic layout and edgecore's DMI socket follow "
        "from it (twin.transport, twin.layout and dmi.edgecore_socket, when not set).",
    )
    transport: TwinTransport = setting(
        TwinTransport.MQTT,
        "Deprecated (set twin.kubeedge_version): mqtt (KubeEdge 1.4-1.14, $hw/... deltas) or "
        "dmi (KubeEdge 1.15+: edgecore calls the runtime over DMI, see the dmi.* settings).",
    )
    device: str = setting("", "KubeEdge device name; empty means emotion-runtime-<runtime_id>.")
    namespace: str = setting("default", "Device namespace (KubeEdge >= 1.17 layout).")
    layout: TwinLayout = setting(
        TwinLayout.V1_4, "Deprecated (set twin.kubeedge_version): twin topic layout, 1.4 or 1.17."
    )
    cache_dir: str = setting(
        ".state/model-cache", "Content-addressed cache of fetched model versions."
    )
    fetch_timeout_s: float = setting(60.0, "Longest a model download may take.")
    max_model_bytes: int = setting(256 * 1024 * 1024, "Largest model download.")
    trusted_key_file: str = setting(
        "",
        "ed25519 public key (PEM); when set, manifests must carry a valid signature.",
    )


@dataclass(frozen=True, slots=True)
class DmiSettings:
    """KubeEdge 1.15+: the runtime as the DMI mapper of its own Device (twin.transport dmi)."""

    edgecore_socket: str = setting(
        "/etc/kubeedge/dmi.sock",
        "edgecore's DMI socket: the file (1.15-1.22) or a directory holding dmi.sock (1.23+); "
        "unset, KubeEdge's default for twin.kubeedge_version.",
    )
    socket: str = setting(
        "/etc/kubeedge/edgeinfer.sock",
        "Where the runtime serves DeviceMapperService for edgecore (in a container, a path "
        "in a directory shared with the host).",
    )
    protocol: str = setting(
        "edgeinfer",
        "The protocol name of the runtime's Device (spec.protocol.protocolName); edgecore "
        "hands every Device of this protocol to this mapper.",
    )


class OffloadMode(enum.StrEnum):
    """When a hard face is answered."""

    WAIT = "wait"  # after the cloud, within the budget (else the edge's answer)
    REFINE = "refine"  # the edge's at once; the cloud's follows as a second response


@dataclass(frozen=True, slots=True)
class OffloadSettings:
    """Joint inference: hard faces answered by the cloud model (this runtime, in the cloud)."""

    url: str = setting(
        "",
        "Base URL of the cloud's Open Inference Protocol door (http://host:8501); empty: no "
        "offload, the edge answers every face.",
    )
    model: str = setting("", "The cloud's model name; empty: the served model's name.")
    token_file: str = setting(
        "", "A file holding the bearer token the cloud's door asks for (its http.token_file)."
    )
    policy: Policy = setting(
        Policy.MARGIN,
        "What makes a face hard: margin (top-1 minus top-2 probability), max_prob (top-1), "
        "entropy (1 - H(p)/ln K, zero-safe), random, always or never.",
    )
    threshold: float = setting(
        0.3,
        "A face is hard when its score under the policy is below this (random: the share of "
        "faces offloaded). Unused when offload.target_rate is set.",
    )
    target_rate: float = setting(
        0.0,
        "Share of faces to offload (0-1; 0: use offload.threshold instead): the threshold is "
        "fitted to it per model version, from the score quantiles the trainer measured on its "
        "calibration faces (manifest offload_scores); a version without them keeps "
        "offload.threshold, with a warning.",
    )
    report_interval_s: float = setting(
        30.0,
        "How often the runtime's twin reports offload_rate (the share of faces offloaded "
        "since the last report) and the offload_policy in force.",
    )
    mode: OffloadMode = setting(
        OffloadMode.WAIT,
        "wait: a hard face's answer waits for the cloud, up to the budget; refine: the edge "
        "answers at once and the cloud's answer follows as a second response with the same "
        "request_id and correlation data (MQTT; the HTTP doors answer once, from the edge).",
    )
    budget_ms: int = setting(
        200,
        "Longest a hard face waits for the cloud; then the edge's answer goes out "
        "(fallback timeout).",
    )
    breaker_failures: int = setting(
        5, "Failed or timed-out offloads in a row that open the circuit breaker."
    )
    breaker_open_s: float = setting(
        10.0, "How long an open breaker sends nothing to the cloud before one probe."
    )
    max_faces_per_s: float = setting(
        100.0, "Most faces offloaded per second (token bucket; 0: no limit)."
    )


@dataclass(frozen=True, slots=True)
class SampleSettings:
    """Hard examples as training data: the hard faces of consenting devices, store and forward."""

    url: str = setting(
        "",
        "Base URL of the trainer's sample intake (cloud-trainer serve --samples; "
        "http://host:8000); empty: nothing is kept, whatever devices consent to. Needs "
        "offload.url: the hard faces are joint inference's.",
    )
    token_file: str = setting(
        "", "A file holding the bearer token the intake asks for (its --intake-token-file)."
    )
    dir: str = setting(
        ".state/samples", "Where hard examples wait for their upload (they survive restarts)."
    )
    quota_mb: float = setting(
        64.0,
        "Most disk the waiting examples take; a new one beyond it is dropped (counted in "
        'edge_samples_total{result="dropped_quota"}).',
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the runtime is configured with."""

    runtime_id: str = setting("edge-1", "This runtime's id, used in topics.", flag="--runtime-id")
    topic_root: str = setting("emotion/v1", "Root of the application topics.")
    log_level: str = setting("INFO", "Logging level.", flag="--log-level")
    shutdown_timeout_s: float = setting(
        10.0, "On SIGTERM, longest time to drain in-flight requests."
    )
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    twin: TwinSettings = field(default_factory=TwinSettings)
    dmi: DmiSettings = field(default_factory=DmiSettings)
    offload: OffloadSettings = field(default_factory=OffloadSettings)
    samples: SampleSettings = field(default_factory=SampleSettings)

    @property
    def client_id(self) -> str:
        """The MQTT client id actually used."""
        return self.mqtt.client_id or f"edge-runtime-{self.runtime_id}"

    @property
    def twin_device(self) -> str:
        """The KubeEdge device name of this runtime."""
        return self.twin.device or f"emotion-runtime-{self.runtime_id}"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One declared setting, as the loaders and docs see it."""

    key: str
    env: str
    flag: str
    alias: str | None
    type: type
    default: Any
    help: str


def pairs(text: str) -> dict[str, str]:
    """Parse ``a=b,c=d`` (blank: none) into a mapping.

    Raises:
        ValueError: an item without ``=``, an empty side, or a key given twice.
    """
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (side.strip() for side in item.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"expected key=value, got {item!r}")
        if key in mapping:
            raise ValueError(f"{key!r} given twice")
        mapping[key] = value
    return mapping


def iter_settings(cls: type = Settings, prefix: str = "") -> Iterator[SettingSpec]:
    """Yield every leaf setting of ``cls`` with its dotted key, env name and flag."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(kind):
            yield from iter_settings(typing.cast(type, kind), f"{key}.")
            continue
        yield SettingSpec(
            key=key,
            env=ENV_PREFIX + key.replace(".", "_").upper(),
            flag="--" + key.replace(".", "-").replace("_", "-"),
            alias=f.metadata.get("flag"),
            type=kind,
            default=f.default,
            help=f.metadata.get("help", ""),
        )


def load_settings(
    environ: Mapping[str, str],
    path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build settings from defaults < YAML file < ``EDGE_*`` variables < overrides.

    Args:
        environ: The process environment (injected so tests pass their own).
        path: Optional YAML file with nested sections (``mqtt: {broker: ...}``).
        overrides: Dotted keys to values, typically from command-line flags.

    Raises:
        ConfigError: naming the offending key and value.
    """
    values: dict[str, object] = {}
    if path is not None:
        values.update(_read_yaml(path))
    specs = {spec.key: spec for spec in iter_settings()}
    for spec in specs.values():
        if spec.env in environ:
            values[spec.key] = environ[spec.env]
    for key, value in (overrides or {}).items():
        if key not in specs:
            raise ConfigError(key, value, "unknown setting")
        values[key] = value
    _apply_release(values)
    converted = {key: _convert(specs[key], raw) for key, raw in values.items()}
    settings = typing.cast(Settings, _build(Settings, converted, ""))
    _validate(settings)
    return settings


def _apply_release(values: dict[str, object]) -> None:
    """What ``twin.kubeedge_version`` decides (``KubeEdge.of``), unless set on its own."""
    raw = str(values.get("twin.kubeedge_version", "1.4"))
    try:
        release = KubeEdge.of(raw)
    except ValueError as exc:
        raise ConfigError("twin.kubeedge_version", raw, str(exc)) from exc
    for key in ("twin.transport", "twin.layout", "dmi.edgecore_socket"):
        if values.get(key) == "":
            del values[key]  # empty: the release decides (as in the ConfigMap)
    for key in ("twin.transport", "twin.layout"):
        if key in values:
            _LOGGER.warning(
                "setting %s is deprecated: set twin.kubeedge_version (it decides this)", key
            )
    values.setdefault("twin.transport", release.transport)
    values.setdefault("twin.layout", release.layout.value)
    if release.dmi_socket:
        values.setdefault("dmi.edgecore_socket", release.dmi_socket)


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("config", str(path), f"cannot read YAML: {exc}") from exc
    if not isinstance(document, Mapping):
        raise ConfigError("config", str(path), "top level must be a mapping")
    known = {spec.key for spec in iter_settings()}
    flat: dict[str, object] = {}

    def walk(node: Mapping[Any, Any], prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if isinstance(value, Mapping):
                walk(value, f"{key}.")
            elif key in known:
                flat[key] = value
            else:
                raise ConfigError(key, value, f"unknown setting in {path}")

    walk(document, "")
    return flat


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _parse_int(raw: object) -> int:
    if isinstance(raw, float) or (isinstance(raw, str) and "." in raw):
        raise ValueError("expected a whole number")
    return int(str(raw))


def _parse_float(raw: object) -> float:
    number = float(str(raw))
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _convert(spec: SettingSpec, raw: object) -> object:
    kind = spec.type
    try:
        if kind is bool:
            return _parse_bool(raw)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(str(raw))
        if kind is int:
            return _parse_int(raw)
        if kind is float:
            return _parse_float(raw)
    except ValueError as exc:
        raise ConfigError(spec.key, raw, str(exc)) from exc
    return str(raw)


def _build(cls: type, values: Mapping[str, object], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = _build(typing.cast(type, kind), values, f"{key}.")
        elif key in values:
            kwargs[f.name] = values[key]
    return cls(**kwargs)


def _require(ok: bool, key: str, value: object, reason: str) -> None:
    if not ok:
        raise ConfigError(key, value, reason)


def _valid_response_filter(template: str) -> bool:
    if not template:
        return True
    if "{device}" not in template:
        return False  # every device could then answer into one shared topic
    try:
        topic_filter = template.format(root="r", device="d")
    except (KeyError, IndexError, ValueError):
        return False
    levels = topic_filter.split("/")
    return (
        not topic_filter.startswith("$")
        and all(level in {"+", "#"} or not any(c in level for c in "+#\x00") for level in levels)
        and "#" not in levels[:-1]
    )


def _validate(s: Settings) -> None:
    _validate_offload(s.offload)
    _validate_samples(s.samples, s.offload)
    _require(
        bool(_SEGMENT.match(s.runtime_id)),
        "runtime_id",
        s.runtime_id,
        "use 1-128 of a-z A-Z 0-9 - _ . : @ (a topic segment and twin value)",
    )
    root = s.topic_root
    _require(
        bool(root)
        and not any(c in root for c in "+#\x00")
        and not root.startswith("/")
        and not root.endswith("/"),
        "topic_root",
        root,
        "must be a topic without wildcards or outer slashes",
    )
    _require(
        _valid_response_filter(s.mqtt.response_topic_filter),
        "mqtt.response_topic_filter",
        s.mqtt.response_topic_filter,
        "must be empty or a topic filter using only the placeholders {root} and {device}, "
        "with {device} in it",
    )
    if s.mqtt.broker:
        try:
            Broker.parse(s.mqtt.broker)
        except ValueError as exc:
            raise ConfigError("mqtt.broker", s.mqtt.broker, str(exc)) from exc
    else:
        _require(s.http.port != 0, "mqtt.broker", "", "empty (no MQTT door) needs http.port")
        _require(
            not s.twin.enabled or s.twin.transport is TwinTransport.DMI,
            "mqtt.broker",
            "",
            "empty (no MQTT door) leaves a twin over MQTT nothing to ride on: set "
            "twin.enabled false or a KubeEdge version with DMI",
        )
    for key, number in (
        ("mqtt.keepalive_s", s.mqtt.keepalive_s),
        ("mqtt.connect_timeout_s", s.mqtt.connect_timeout_s),
        ("mqtt.reconnect_min_s", s.mqtt.reconnect_min_s),
        ("batch.max_size", s.batch.max_size),
        ("batch.max_queue", s.batch.max_queue),
        ("batch.request_timeout_s", s.batch.request_timeout_s),
        ("limits.max_payload_bytes", s.limits.max_payload_bytes),
        ("limits.max_faces_per_request", s.limits.max_faces_per_request),
        ("limits.max_face_side", s.limits.max_face_side),
        ("shutdown_timeout_s", s.shutdown_timeout_s),
        ("twin.fetch_timeout_s", s.twin.fetch_timeout_s),
        ("twin.max_model_bytes", s.twin.max_model_bytes),
    ):
        _require(number > 0, key, number, "must be greater than 0")
    _require(s.model.threads >= 0, "model.threads", s.model.threads, "must be 0 (auto) or more")
    _require(
        not s.mqtt.share_group or bool(_SEGMENT.match(s.mqtt.share_group)),
        "mqtt.share_group",
        s.mqtt.share_group,
        "use 1-128 of a-z A-Z 0-9 - _ . : @ (a topic segment)",
    )
    _require(
        1 <= s.mqtt.receive_maximum <= 65535,
        "mqtt.receive_maximum",
        s.mqtt.receive_maximum,
        "must be 1..65535 (MQTT v5)",
    )
    _require(
        s.limits.answer_cache_size >= 0,
        "limits.answer_cache_size",
        s.limits.answer_cache_size,
        "must be 0 or more",
    )
    _require(
        s.mqtt.session_expiry_s >= 0,
        "mqtt.session_expiry_s",
        s.mqtt.session_expiry_s,
        "must be 0 or more",
    )
    _require(
        s.mqtt.reconnect_max_s >= s.mqtt.reconnect_min_s,
        "mqtt.reconnect_max_s",
        s.mqtt.reconnect_max_s,
        "must be at least mqtt.reconnect_min_s",
    )
    _require(
        s.batch.max_wait_s >= 0,
        "batch.max_wait_s",
        s.batch.max_wait_s,
        "must be 0 or more",
    )
    _require(
        s.limits.max_faces_per_request <= s.batch.max_size,
        "limits.max_faces_per_request",
        s.limits.max_faces_per_request,
        f"must not exceed batch.max_size ({s.batch.max_size})",
    )
    for key, port in (("metrics.port", s.metrics.port), ("http.port", s.http.port)):
        _require(0 <= port <= 65535, key, port, "must be a port number (0 disables)")
    _require(
        s.http.max_body_bytes > 0,
        "http.max_body_bytes",
        s.http.max_body_bytes,
        "must be greater than 0",
    )
    for key, text in (
        ("http.tfserving_models", s.http.tfserving_models),
        ("http.tfserving_versions", s.http.tfserving_versions),
        ("http.tfserving_labels", s.http.tfserving_labels),
    ):
        try:
            pairs(text)
        except ValueError as exc:
            raise ConfigError(key, text, str(exc)) from exc
    versions = pairs(s.http.tfserving_versions)
    for version_number in versions:
        _require(
            version_number.isdigit() and int(version_number) < 2**63,
            "http.tfserving_versions",
            s.http.tfserving_versions,
            f"version {version_number!r} is not a TF Serving version number",
        )
    for label, labelled in pairs(s.http.tfserving_labels).items():
        _require(
            labelled in versions,
            "http.tfserving_labels",
            s.http.tfserving_labels,
            f"label {label!r} names version {labelled}, which http.tfserving_versions lacks",
        )
    _require(
        s.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
        "log_level",
        s.log_level,
        "one of DEBUG, INFO, WARNING, ERROR",
    )
    _require(
        bool(_SEGMENT.match(s.twin_device)),
        "twin.device",
        s.twin_device,
        "must be a valid KubeEdge device name",
    )


def _require_http_url(key: str, value: str, empty_means: str) -> None:
    url = urlsplit(value)
    _require(
        not value or (url.scheme in {"http", "https"} and bool(url.netloc)),
        key,
        value,
        f"expected http://host:port or https://host:port (or empty: {empty_means})",
    )


def _validate_offload(o: OffloadSettings) -> None:
    _require_http_url("offload.url", o.url, "no offload")
    _require(o.budget_ms > 0, "offload.budget_ms", o.budget_ms, "must be positive")
    _require(0.0 <= o.target_rate <= 1.0, "offload.target_rate", o.target_rate, "must be 0-1")
    _require(
        o.report_interval_s > 0, "offload.report_interval_s", o.report_interval_s, "must be > 0"
    )
    _require(o.breaker_failures > 0, "offload.breaker_failures", o.breaker_failures, "must be > 0")
    _require(o.breaker_open_s > 0, "offload.breaker_open_s", o.breaker_open_s, "must be > 0")
    _require(o.max_faces_per_s >= 0, "offload.max_faces_per_s", o.max_faces_per_s, "must be >= 0")


def _validate_samples(samples: SampleSettings, offload: OffloadSettings) -> None:
    _require_http_url("samples.url", samples.url, "keep nothing")
    _require(
        not samples.url or bool(offload.url),
        "samples.url",
        samples.url,
        "needs offload.url (the hard faces are joint inference's)",
    )
    _require(bool(samples.dir), "samples.dir", samples.dir, "must not be empty")
    _require(samples.quota_mb > 0, "samples.quota_mb", samples.quota_mb, "must be > 0")


def read_secret(key: str, path: str) -> str:
    """The stripped content of a secret file (a mounted Kubernetes Secret); "" for no path.

    Raises:
        ConfigError: the file cannot be read.
    """
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(key, path, f"cannot read: {exc}") from exc
