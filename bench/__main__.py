"""``make bench``: measure this machine and write bench/results/ (JSON, Markdown, PNG).

Implemented so far: part 1 (the in-process LiteRT ceiling), part 5 in part (cold start and
idle RSS) and part 6 (payload size and decode cost). Parts 2-4 (naive peer, runtime end to
end, swap under load) and RSS/CPU under load are not written yet; the report says so
instead of inventing figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import ceiling, payload, resources

REPO = Path(__file__).resolve().parents[1]
TARGET_PAYLOAD_RATIO = 0.1


def _machine() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "processor": platform.processor() or platform.machine(),
    }


def _model_files(registry: Path) -> dict[str, Path]:
    directory = registry / "emotion" / "1.0.0"
    files = {
        "float32": directory / "model.tflite",
        "int8-dynamic": directory / "model-int8-dynamic.tflite",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(f"bench: model files missing ({', '.join(missing)}); run make setup first")
    return files


def _plot(rows: list[ceiling.CeilingRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key in sorted({(r.variant, r.threads) for r in rows}):
        cells = sorted((r for r in rows if (r.variant, r.threads) == key), key=lambda r: r.batch)
        axes.plot(
            [r.batch for r in cells],
            [r.faces_per_s for r in cells],
            marker="o",
            label=f"{key[0]}, {key[1]} thread(s)",
        )
    axes.set_xscale("log", base=2)
    axes.set_xlabel("batch size (faces)")
    axes.set_ylabel("faces / s")
    axes.set_title("LiteRT ceiling: mini-XCEPTION 64x64x1, in process")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _markdown(
    result: dict[str, object],
    ceiling_rows: list[ceiling.CeilingRow],
    payload_rows: list[payload.PayloadRow],
    resource_rows: list[resources.ResourceRow],
) -> str:
    machine = dict(result["machine"])  # type: ignore[call-overload]
    lines = [
        f"Measured {result['measured_at']} on {machine['cpu_count']} cores "
        f"({machine['processor']}, {machine['system']}, Python {machine['python']})"
        + (" — smoke run, numbers not meaningful" if result["smoke"] else ""),
        "",
        "**1. Ceiling** (raw LiteRT interpreter in process, faces/s)",
        "",
    ]
    batches = sorted({r.batch for r in ceiling_rows})
    lines.append("| variant | threads | " + " | ".join(f"batch {b}" for b in batches) + " |")
    lines.append("|---|---:|" + "---:|" * len(batches))
    for key in sorted({(r.variant, r.threads) for r in ceiling_rows}):
        cells = {r.batch: r.faces_per_s for r in ceiling_rows if (r.variant, r.threads) == key}
        lines.append(
            f"| {key[0]} | {key[1]} | " + " | ".join(f"{cells[b]:,.0f}" for b in batches) + " |"
        )
    ours, reference = payload_rows
    ratio = ours.bytes_per_face / reference.bytes_per_face
    lines += [
        "",
        "**6. Payload** (one face per request)",
        "",
        "| format | bytes per face | decode (µs) |",
        "|---|---:|---:|",
        *(f"| {r.format} | {r.bytes_per_face:,} | {r.decode_us:,.1f} |" for r in payload_rows),
        "",
        f"Bytes ratio ours/reference: {ratio:.3f} (target ≤ {TARGET_PAYLOAD_RATIO}: "
        f"{'met' if ratio <= TARGET_PAYLOAD_RATIO else 'MISSED'}); decode "
        f"{reference.decode_us / ours.decode_us:,.0f}x faster.",
        "",
        "**5. Resources** (so far)",
        "",
        "| figure | measured | target |",
        "|---|---:|---|",
        *(f"| {r.figure} | {r.value:.2f} {r.unit} | {r.target} |" for r in resource_rows),
        "",
        "Not measured yet: 2 (naive peer), 3 (runtime end to end), 4 (swap under load), "
        "and RSS/CPU under load.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the results."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the LiteRT ceiling and payload cost on this machine; write "
        "bench/results/bench.{json,md} and ceiling.png.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--registry", type=Path, default=REPO / "models")
    args = parser.parse_args(argv)
    files = _model_files(args.registry)
    seconds = 0.05 if args.smoke else 1.5
    batches = (1, 8) if args.smoke else (1, 2, 4, 8, 16, 32, 64)
    ceiling_rows = []
    for variant, path in files.items():
        for threads in (1, 2):
            for batch in batches:
                row = ceiling.measure(path, variant, threads, batch, seconds)
                print(
                    f"ceiling {variant} threads={threads} batch={batch}: "
                    f"{row.faces_per_s:,.0f} faces/s"
                )
                ceiling_rows.append(row)
    payload_rows = payload.measure(20 if args.smoke else 2000)
    resource_rows = resources.measure(REPO, args.registry, 0.5 if args.smoke else 5.0)
    result: dict[str, object] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "machine": _machine(),
        "ceiling": [asdict(r) for r in ceiling_rows],
        "payload": [asdict(r) for r in payload_rows],
        "resources": [asdict(r) for r in resource_rows],
        "not_measured": [
            "naive_peer",
            "runtime_end_to_end",
            "swap_under_load",
            "rss_and_cpu_under_load",
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = _markdown(result, ceiling_rows, payload_rows, resource_rows)
    (args.out / "bench.md").write_text(text, encoding="utf-8")
    _plot(ceiling_rows, args.out / "ceiling.png")
    print(text)
    print(args.out / "bench.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
