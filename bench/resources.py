"""Part 5, idle side: runtime cold start to ready, and its resident memory when idle."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.processes import broker, runtime

TARGET_COLD_START_S = 1.0
TARGET_RSS_MB = 120.0


@dataclass(frozen=True, slots=True)
class ResourceRow:
    """One measured runtime resource figure."""

    figure: str
    value: float
    unit: str
    target: str


def measure(repo: Path, registry: Path, idle_s: float) -> list[ResourceRow]:
    """Start mosquitto and a runtime (LiteRT, float32); time to /readyz, then idle RSS."""
    with broker(repo) as port:
        start = time.monotonic()
        with runtime(repo, port, registry) as started:
            cold_start = time.monotonic() - start
            time.sleep(idle_s)
            rss_mb = psutil.Process(started.pid).memory_info().rss / 2**20
    return [
        ResourceRow(
            "cold start to ready (process start, model load, broker)",
            cold_start,
            "s",
            f"≤ {TARGET_COLD_START_S:g} s",
        ),
        ResourceRow(
            "runtime RSS, idle (LiteRT, no TensorFlow)", rss_mb, "MB", f"≤ {TARGET_RSS_MB:g} MB"
        ),
    ]
