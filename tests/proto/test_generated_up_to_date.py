"""The committed generated protobuf code matches what scripts/gen-proto produces now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO


def test_generated_code_is_up_to_date(tmp_path: Path):
    sources = sorted((REPO / "proto" / "edgeinfer" / "v1").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *[str(s.relative_to(REPO / "proto")) for s in sources],
        ],
        cwd=REPO / "proto",
        check=True,
    )
    generated = sorted((tmp_path / "edgeinfer" / "v1").glob("*_pb2.py*"))
    assert len(generated) == 2 * len(sources)
    for fresh in generated:
        committed = REPO / "proto" / "edgeinfer" / "v1" / fresh.name
        assert committed.read_text() == fresh.read_text(), f"{fresh.name} is stale: make proto"


def test_enums_follow_buf_style_with_unspecified_zero():
    from edgeinfer.v1 import inference_pb2

    for enum in inference_pb2.DESCRIPTOR.enum_types_by_name.values():
        zero = enum.values_by_number[0].name
        assert zero.endswith("_UNSPECIFIED"), zero
