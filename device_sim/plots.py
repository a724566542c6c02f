"""The fleet report's plots: latency histogram, throughput and p99 over time, accuracy per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: files only, no GUI backend

from device_sim.stats import FleetStats


def _latency(stats: FleetStats, path: Path) -> Path:
    latencies = np.array([latency * 1000 for _, latency, _ in stats.timeline] or [0.0])
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    bins = np.logspace(np.log10(max(latencies.min(), 0.05)), np.log10(latencies.max() + 1), 60)
    axis.hist(latencies, bins=bins.tolist(), color="#4c72b0")
    axis.set_xscale("log")
    for percentile, style in ((50, "--"), (99, ":"), (99.9, "-.")):
        value = stats.percentile_ms(percentile)
        axis.axvline(value, color="black", linestyle=style, label=f"p{percentile:g} {value:.1f} ms")
    axis.set(xlabel="latency (ms, log scale)", ylabel="answers", title="answer latency")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _timeline(stats: FleetStats, path: Path) -> Path:
    seconds = np.array([t for t, _, _ in stats.timeline])
    latencies = np.array([latency * 1000 for _, latency, _ in stats.timeline])
    buckets = np.floor(seconds).astype(int) if len(seconds) else np.zeros(0, int)
    span = int(buckets.max()) + 1 if len(buckets) else 1
    throughput = np.bincount(buckets, minlength=span)
    p99 = np.array(
        [
            np.percentile(latencies[buckets == s], 99) if np.any(buckets == s) else np.nan
            for s in range(span)
        ]
    )
    figure = Figure(figsize=(9, 4))
    rate_axis = figure.subplots()
    rate_axis.plot(np.arange(span), throughput, color="#4c72b0", label="answers/s")
    rate_axis.set(xlabel="time (s)", ylabel="answers/s", title="throughput and p99 over time")
    p99_axis = rate_axis.twinx()
    p99_axis.plot(np.arange(span), p99, color="#c44e52", label="p99 (ms)")
    p99_axis.set_ylabel("p99 latency (ms)")
    for at, text in stats.events:
        if text.startswith("first answer from"):
            rate_axis.axvline(at, color="green", linestyle="--")
            rate_axis.annotate(text.removeprefix("first answer from "), (at, 0), rotation=90)
    handles = rate_axis.get_legend_handles_labels()
    more = p99_axis.get_legend_handles_labels()
    rate_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _accuracy(stats: FleetStats, path: Path) -> Path:
    versions = sorted(v for v, n in stats.judged.items() if n)
    accuracy = [stats.correct[v] / stats.judged[v] for v in versions]
    figure = Figure(figsize=(5, 4))
    axis = figure.subplots()
    bars = axis.bar(versions or ["none"], accuracy or [0.0], color="#55a868")
    axis.bar_label(bars, labels=[f"{a:.1%}" for a in accuracy] or ["no labelled answers"])
    axis.set(ylim=(0, 1.05), xlabel="model version", ylabel="accuracy on labelled faces")
    axis.set_title("accuracy per model version")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def write_plots(stats: FleetStats, directory: Path, stem: str = "fleet") -> list[Path]:
    """Write ``<stem>-latency.png``, ``<stem>-timeline.png`` and ``<stem>-accuracy.png``."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _latency(stats, directory / f"{stem}-latency.png"),
        _timeline(stats, directory / f"{stem}-timeline.png"),
        _accuracy(stats, directory / f"{stem}-accuracy.png"),
    ]
