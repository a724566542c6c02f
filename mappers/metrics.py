"""Prometheus counters of a mapper (own registry, so several mappers can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, start_http_server


class MapperMetrics:
    """What a mapper did and what it refused."""

    def __init__(self, mapper: str) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "mapper_messages_total",
            "Messages taken, by kind",
            ["mapper", "kind"],
            registry=self.registry,
        )
        self.bad_messages = Counter(
            "mapper_bad_messages_total",
            "Messages refused (unparsable, invalid values, unknown devices), by kind",
            ["mapper", "kind"],
            registry=self.registry,
        )
        self.reports = Counter(
            "mapper_twin_reports_total",
            "twin/update, state/update and data/update messages published",
            ["mapper", "kind"],
            registry=self.registry,
        )
        self._mapper = mapper

    def took(self, kind: str) -> None:
        """Count a message taken."""
        self.messages.labels(self._mapper, kind).inc()

    def refused(self, kind: str) -> None:
        """Count a message refused."""
        self.bad_messages.labels(self._mapper, kind).inc()

    def reported(self, kind: str) -> None:
        """Count a message published to edgecore."""
        self.reports.labels(self._mapper, kind).inc()

    def refused_total(self, kind: str) -> float:
        """How many messages of ``kind`` were refused (for tests and logs)."""
        value = self.registry.get_sample_value(
            "mapper_bad_messages_total", {"mapper": self._mapper, "kind": kind}
        )
        return value or 0.0

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on ``port`` (0: do not)."""
        if port:
            start_http_server(port, registry=self.registry)
