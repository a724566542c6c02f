"""The benchmark runs end to end at tiny sizes (keeps `make bench` from rotting)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


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
    assert "**6. Payload**" in (tmp_path / "bench.md").read_text()
    assert (tmp_path / "ceiling.png").read_bytes().startswith(b"\x89PNG")
