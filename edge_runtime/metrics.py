"""Prometheus metrics of one runtime, in their own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """The runtime's metrics; ``registry`` is what ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "edge_requests",
            "Requests answered, by front door (mqtt, tfserving, oip) and status.",
            ["frontdoor", "status"],
            registry=r,
        )
        self.rejected = Counter(
            "edge_invalid_requests",
            "Requests refused as invalid, by front door and reason.",
            ["frontdoor", "reason"],
            registry=r,
        )
        self.faces = Counter("edge_faces", "Faces classified.", registry=r)
        self.batch_size = Histogram(
            "edge_batch_size_faces",
            "Faces per batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "edge_queue_seconds",
            "Time a request waited for its batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "edge_inference_seconds",
            "Model time per batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "edge_request_seconds",
            "Receipt to response, inside the runtime, by front door.",
            ["frontdoor"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("edge_queue_depth", "Requests waiting for a batch.", registry=r)
        self.model_info = Gauge(
            "edge_model_info",
            "The model being served (value 1).",
            ["name", "version", "variant"],
            registry=r,
        )
        self.model_swaps = Counter(
            "edge_model_swaps", "Model changes, by result.", ["result"], registry=r
        )
        self.connected = Gauge(
            "edge_mqtt_connected", "1 while connected to the broker.", registry=r
        )
        self.duplicates = Counter(
            "edge_duplicate_requests",
            "Repeated request ids of a device (its retries), by what was done: in_progress "
            "(acknowledged, its answer is on the way) or answered (answered again from the "
            "recent answers, without running the model).",
            ["outcome"],
            registry=r,
        )
        self.broker_dropped = Gauge(
            "edge_broker_dropped_messages",
            "Messages the broker says it dropped since it started ($SYS/broker/publish/"
            "messages/dropped: queues full, e.g. mosquitto's max_queued_messages).",
            registry=r,
        )
        self.response_topics_ignored = Counter(
            "edge_response_topics_ignored",
            "MQTT v5 Response Topics not honoured (answered on the device's result topic), "
            "by reason.",
            ["reason"],
            registry=r,
        )
        self.publish_failures = Counter(
            "edge_publish_failures", "Responses the broker did not accept.", registry=r
        )
        self.hard_faces = Counter(
            "edge_hard_faces",
            "Faces the offload policy found hard for the edge's model (joint inference).",
            registry=r,
        )
        self.offloads = Counter(
            "edge_offloaded_faces",
            "Hard faces by what became of them: cloud (the cloud answered), timeout, "
            "circuit_open, rate_limited or cloud_error (the edge's answer stood).",
            ["result"],
            registry=r,
        )

        self.offload_threshold = Gauge(
            "edge_offload_threshold",
            "The hard-example threshold in force (given, or fitted to offload.target_rate for "
            "the served model).",
            registry=r,
        )

        self.samples = Counter(
            "edge_samples",
            "Hard examples of consenting devices, by what became of them: kept (on disk for "
            "upload), duplicate (that face was kept already, or sent lately), dropped_quota "
            "(the disk quota was spent), dropped_error (could not be written), uploaded (the "
            "intake has it), "
            "rejected (the intake refused it as malformed).",
            ["result"],
            registry=r,
        )
        self.samples_waiting_bytes = Gauge(
            "edge_samples_waiting_bytes",
            "Disk taken by hard examples waiting for upload.",
            registry=r,
        )
        self.twin_values_refused = Counter(
            "edge_twin_values_refused",
            "Desired twin values the runtime could not use, by twin (each also logged).",
            ["twin"],
            registry=r,
        )

    def serving(self, name: str, version: str, variant: str) -> None:
        """Record the model now served (and only it)."""
        self.model_info.clear()
        self.model_info.labels(name, version, variant).set(1)
