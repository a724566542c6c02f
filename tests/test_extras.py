"""Each extra installed alone in a clean venv runs its programs (the trainer image once failed at
import because the trainer reached into the simulator's camera stack).

The venvs are kept in .state/extras, keyed by the dependency declarations, so only the first run
after a change pays for the installs (pip's cache makes that a copy, not a download).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow

# What each extra must run, and which other programs' packages it must not import.
SMOKE = {
    "edge": (
        ["edge-runtime --help"],
        """
from edge_runtime.backends import load_model
from edge_runtime.settings import ModelSettings
import numpy as np, sys
model = load_model(ModelSettings(registry=sys.argv[1], version="1.0.0"), 4)
spec = model.input_spec
probabilities = model.predict_now(np.zeros((1, spec.height, spec.width, spec.channels), np.float32))
assert probabilities.shape == (1, 7), probabilities.shape
import edge_runtime.web.server, edge_runtime.web.tfserving, edge_runtime.web.oip  # HTTP doors
""",
        ("tensorflow", "device_sim", "cloud_trainer", "mappers"),
    ),
    "sim": (
        ["device-sim --help", "device-sim --devices 2 --emit-devices v1beta1", "app-sim --help"],
        """
from device_sim.sources import open_source
shot = open_source("synthetic", 1).next_shot()
assert shot.faces
""",
        ("tensorflow", "cloud_trainer", "mappers"),
    ),
    "mappers": (
        ["kubeedge-mapper --help"],
        """
import mappers, kubeedge_twin
""",
        ("tensorflow", "device_sim", "cloud_trainer", "edge_runtime", "kubeedge_sim"),
    ),
    "kubeedge-sim": (
        ["kubeedge-sim --help", "kubeedge-sim edgecore --help", "kubeedge-twin-sim --help"],
        """
import asyncio, pathlib, tempfile
from kubeedge_sim.cloudhub import CloudHub
from kubeedge_sim.certs import make_certificates
async def main():
    hub = CloudHub(make_certificates(pathlib.Path(tempfile.mkdtemp()), "n"), "n", current=True)
    await hub.start()
    assert hub.port
    await hub.stop()
asyncio.run(main())
""",
        ("tensorflow", "device_sim", "cloud_trainer", "edge_runtime", "mappers"),
    ),
    "trainer": (
        ["cloud-trainer --help"],
        """
from cloud_trainer.data import load
data = load("synthetic:28")
assert len(data.split("train").labels) == 28
""",
        ("device_sim", "edge_runtime", "mappers", "hdrh", "pydantic"),
    ),
}


def _declarations_hash() -> str:
    text = (REPO / "setup.cfg").read_bytes() + (REPO / "pyproject.toml").read_bytes()
    return hashlib.sha256(text).hexdigest()[:12]


def _venv(extra: str) -> Path:
    """A venv with only ``.[extra]`` installed (from the sources), made once per declarations."""
    root = REPO / ".state" / "extras"
    venv = root / f"{extra}-{_declarations_hash()}"
    if (venv / ".complete").exists():
        return venv
    for old in root.glob(f"{extra}-*"):
        shutil.rmtree(old)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Installed from a copy of the sources: a build in place would leave build/ in the repo.
    source = venv / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".state", "models", "demo-output", "__pycache__", "*.egg-info"
        ),
    )
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{source}[{extra}]"],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        shutil.rmtree(venv)
        pytest.fail(f"pip install .[{extra}] failed:\n{installed.stderr[-3000:]}")
    shutil.rmtree(source)
    (venv / ".complete").touch()
    return venv


@pytest.mark.parametrize("extra", list(SMOKE))
def test_extra_alone_runs_its_programs(extra: str, registry: Path, tmp_path: Path) -> None:
    commands, code, forbidden = SMOKE[extra]
    venv = _venv(extra)
    for command in commands:
        program, *args = command.split()
        ran = subprocess.run(
            [str(venv / "bin" / program), *args], capture_output=True, text=True, cwd=tmp_path
        )
        assert ran.returncode == 0, f"{command}:\n{ran.stderr[-3000:]}"
    check = (
        code
        + f"\nleaked = sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r})"
        + "\nassert not leaked, leaked\n"
    )
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys\n" + check, str(registry)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repo: the installed packages, not the sources, are imported
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
