"""Each package's public surface is its sorted ``__all__``, and every name exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["edge_runtime", "kubeedge_twin", "device_sim", "cloud_trainer", "mappers"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str):
    module = importlib.import_module(name)
    exported = module.__all__
    # isort-style order (what ruff's RUF022 keeps): CONSTANTS, Classes, functions.
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for member in exported:
        assert hasattr(module, member), member


def test_edge_runtime_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, edge_runtime, edge_runtime.backends.litert; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
