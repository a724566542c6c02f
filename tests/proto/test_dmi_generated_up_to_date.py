"""The committed DMI stubs match what scripts/gen-proto produces from KubeEdge's api.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO


def test_dmi_stubs_are_up_to_date(tmp_path: Path) -> None:
    proto = "kubeedge_twin/dmi/v1beta1/api.proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            proto,
        ],
        cwd=REPO,
        check=True,
    )
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        fresh = tmp_path / "kubeedge_twin" / "dmi" / "v1beta1" / name
        committed = REPO / "kubeedge_twin" / "dmi" / "v1beta1" / name
        assert committed.read_text() == fresh.read_text(), f"{name} is stale: make proto"
