"""Fleet measurements: latency histogram, counts, accuracy per model version, a timeline."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

LATENCY_MAX_US = 60_000_000
_FIRST_ANSWER = "first answer from "


@dataclass
class FleetStats:
    """Everything the fleet measured; shared by all cameras of one process."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    answered: int = 0
    lost: int = 0
    retries: int = 0  # requests sent again because no answer came in time
    injected: int = 0  # fault-injected requests sent
    disconnects: int = 0  # injected connection drops
    frames_without_face: int = 0  # frames the detector found no face in (nothing sent)
    bad_messages: int = 0  # undecodable answers or control messages
    statuses: Counter[str] = field(default_factory=Counter)
    injected_statuses: Counter[str] = field(default_factory=Counter)
    correct: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    judged: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    timeline: list[tuple[float, float, str]] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    histogram: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, LATENCY_MAX_US, 3))
    _versions: set[str] = field(default_factory=set)

    @property
    def failed(self) -> int:
        """Answers to genuine requests whose status was not OK."""
        return sum(self.statuses.values()) - self.statuses.get("OK", 0)

    def saw_version(self, version: str) -> None:
        """Mark the first answer from each model version on the timeline."""
        if version not in self._versions:
            self._versions.add(version)
            self.event(f"{_FIRST_ANSWER}{version}")

    def event(self, text: str) -> None:
        """Put something that happened on the timeline (twin changes, swaps)."""
        self.events.append((time.monotonic() - self.started, text))

    def record(self, latency_s: float, status: str, version: str, correct: bool | None) -> None:
        """Record one answer."""
        self.answered += 1
        self.statuses[status] += 1
        self.histogram.record_value(max(1, int(latency_s * 1e6)))
        self.timeline.append((time.monotonic() - self.started, latency_s, version))
        if correct is not None and status == "OK":
            self.judged[version] += 1
            self.correct[version] += int(correct)

    def record_injected(self, status: str) -> None:
        """Record the answer to a fault-injected request (kept out of latency and accuracy)."""
        self.answered += 1
        self.injected_statuses[status] += 1

    def percentile_ms(self, percentile: float) -> float:
        """Latency percentile in milliseconds."""
        return float(self.histogram.get_value_at_percentile(percentile)) / 1000.0

    def summary(self) -> dict[str, Any]:
        """The figures of the final report."""
        elapsed = time.monotonic() - self.started
        return {
            "sent": self.sent,
            "answered": self.answered,
            "failed": self.failed,
            "lost": self.lost,
            "retries": self.retries,
            "statuses": dict(self.statuses),
            "disconnects": self.disconnects,
            "frames_without_face": self.frames_without_face,
            "bad_messages": self.bad_messages,
            "injected": self.injected,
            "injected_statuses": dict(self.injected_statuses),
            "duration_s": round(elapsed, 3),
            "throughput_rps": round(self.answered / elapsed, 1) if elapsed else 0.0,
            "latency_ms": {
                "p50": self.percentile_ms(50),
                "p90": self.percentile_ms(90),
                "p99": self.percentile_ms(99),
                "p99_9": self.percentile_ms(99.9),
                "max": float(self.histogram.get_max_value()) / 1000.0,
            },
            "accuracy_by_model_version": {
                version: round(self.correct[version] / count, 4)
                for version, count in sorted(self.judged.items())
                if count
            },
            "answers_by_model_version": dict(sorted(self.judged.items())),
            "events": [{"t_s": round(t, 3), "event": e} for t, e in self.events],
        }

    def snapshot(self) -> dict[str, Any]:
        """Running counts for a live view (cheap; no percentiles of the whole run)."""
        return {
            "sent": self.sent,
            "answered": self.answered,
            "failed": self.failed,
            "lost": self.lost,
            "injected": self.injected,
            "disconnects": self.disconnects,
            "versions": dict(self.judged),
        }

    def export(self) -> dict[str, Any]:
        """Everything needed to merge this into another process's stats (picklable)."""
        return {
            "counts": {
                name: getattr(self, name)
                for name in (
                    "sent",
                    "answered",
                    "lost",
                    "retries",
                    "injected",
                    "disconnects",
                    "frames_without_face",
                    "bad_messages",
                )
            },
            "statuses": dict(self.statuses),
            "injected_statuses": dict(self.injected_statuses),
            "correct": dict(self.correct),
            "judged": dict(self.judged),
            "timeline": self.timeline,
            "events": self.events,
            "histogram": self.histogram.encode(),
        }

    def merge(self, exported: dict[str, Any]) -> None:
        """Add another process's ``export()`` (same ``started`` clock: monotonic is system-wide)."""
        for name, value in exported["counts"].items():
            setattr(self, name, getattr(self, name) + value)
        self.statuses.update(exported["statuses"])
        self.injected_statuses.update(exported["injected_statuses"])
        for version, count in exported["correct"].items():
            self.correct[version] += count
        for version, count in exported["judged"].items():
            self.judged[version] += count
        self.timeline.extend(exported["timeline"])
        self.timeline.sort()
        firsts = {text for _, text in self.events if text.startswith(_FIRST_ANSWER)}
        for at, text in exported["events"]:
            if text not in firsts:  # each process sees its own first answer of a version
                self.events.append((at, text))
        self.events.sort()
        self.histogram.add(HdrHistogram.decode(exported["histogram"]))

    def write(self, path: Path) -> Path:
        """Write the JSON report."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        return path
