"""The benchmark runs end to end at tiny sizes (keeps `make bench` from rotting)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


def test_bench_smoke_writes_json_markdown_and_plot(registry: Path, tmp_path: Path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--out",
            str(tmp_path),
            "--registry",
            str(registry),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    cells = {(r["variant"], r["threads"], r["batch"]) for r in result["ceiling"]}
    assert ("float32", 2, 8) in cells
    assert ("int8-dynamic", 1, 1) in cells
    assert all(r["faces_per_s"] > 0 for r in result["ceiling"])
    ours, reference = result["payload"]
    assert ours["bytes_per_face"] < reference["bytes_per_face"] / 10
    cold_start, rss = result["resources"]
    assert 0 < cold_start["value"] < 60
    assert rss["unit"] == "MB"
    assert rss["value"] > 10
    markdown = (tmp_path / "bench.md").read_text()
    for part in ("**1. Ceiling**", "**2-3. End to end", "**4. Swap", "**5. Resources", "**6. Pay"):
        assert part in markdown
    for plot in ("ceiling.png", "e2e.png"):
        assert (tmp_path / plot).read_bytes().startswith(b"\x89PNG")
    rounds = result["head_to_head"]
    assert len(rounds["naive"]) == len(rounds["runtime"]) == 1
    assert "Maximum head to head: 1 interleaved" in markdown
    assert rounds["runtime_cpu_ms_per_face"][0] > 0
    assert rounds["interpreter_ms_per_face"][0] > 0
    contended = result["contended"]
    assert len(contended["alone"]) == len(contended["contended"]) == 1
    assert all(r["lost"] == 0 for r in contended["alone"] + contended["contended"])
    # the naive peer met the same rounds: the machine's own figures beside ours
    assert len(contended["naive_alone"]) == len(contended["naive_contended"]) == 1
    assert all(r["lost"] == 0 for r in contended["naive_alone"] + contended["naive_contended"])
    assert "**8. Beside a busy neighbour**" in markdown
    assert "The naive peer in the same rounds" in markdown
    assert [r["threads"] for r in result["interpreter_after_idle"]] == [1, 2]
    assert "A face after the core idled" in markdown
    for ratio in (
        "cpu_vs_interpreter",
        "tfserving_rps",
        "contended_p99_ratio",
        "contended_p99_ratio_naive",
        "p99_at_half_naive_ms",
        "interpreter_after_idle",
    ):
        assert result["ratios"][ratio] > 0, ratio
    naive = result["naive_peer"]
    assert naive["answered"] > 0
    assert naive["errors"] == naive["lost"] == 0
    closed = result["runtime_closed_loop"]
    assert [r["load"] for r in closed] == [1, 8]
    for row in closed + result["runtime_open_loop"]:
        assert row["errors"] == row["lost"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["p99_9_ms"]
    assert len(result["runtime_open_loop"]) == 3
    swap = result["swap_under_load"]
    assert swap["errors"] == swap["lost"] == 0  # the push landed (else the bench raises)
    under_load = result["under_load"]
    assert under_load["rss_mb"] > 10
    # every party to the load spent CPU on it, and the budget line says what that bounds
    assert min(under_load[k] for k in under_load if "cpu" in k) > 0
    assert "cores cannot answer more than" in markdown
    assert result["ratios"]["vs_naive"] > 0
    assert "**7. Front doors and peers**" in markdown
    doors = result["front_doors"]
    ours = {(r["protocol"], r["concurrency"]) for r in doors if r["target"] == "edge runtime"}
    for protocol in ("OIP (HTTP)", "TF Serving REST (app)", "MQTT"):
        assert {(protocol, 1), (protocol, 8)} <= ours
    assert all(r["errors"] == 0 and r["faces_per_s"] > 0 for r in doors)
    measured = {r["target"] for r in doors} - {"edge runtime"}
    skipped = {s["target"] for s in result["peers_skipped"]}
    assert len(measured | skipped) == 2  # each peer measured, or skipped with its reason
    assert all(s["reason"] for s in result["peers_skipped"])


def test_offload_curves_put_the_hardest_faces_first_and_the_oracle_on_top() -> None:
    import numpy as np

    from bench.offload import RATES, accuracy_curves, markdown

    labels = np.array([0, 1, 0, 1])
    edge = np.array([[0.9, 0.1], [0.55, 0.45], [0.4, 0.6], [0.2, 0.8]])  # 2nd, 3rd wrong
    cloud = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # always right
    curves = accuracy_curves(edge, cloud, labels)
    half = RATES.index(0.5)
    assert curves["oracle"][half] == 1.0  # the two wrong ones offloaded
    assert curves["margin"][half] == 1.0  # they are also the two least sure
    assert curves["margin"][0] == 0.5
    assert all(c[-1] == 1.0 for c in curves.values())
    text = markdown(curves, 4, None, [], None, 200.0)
    assert "| margin | 50.0% |" in text
    assert "Where a policy is not better than random choice: margin:" in text


def test_overhead_answers_every_request_in_process_and_prints_cpu_per_request() -> None:
    import asyncio

    from bench.overhead import cpu_us_per_request

    assert asyncio.run(cpu_us_per_request(300)) > 0  # answers() would time out on a loss


def test_overhead_compares_two_checkouts_in_alternating_processes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.overhead import main

    assert main(["--a", str(REPO), "--runs", "1", "--requests", "200"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("CPU us per request") == 2
    assert "A (" in printed
    assert "B (" in printed
