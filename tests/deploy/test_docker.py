"""The images' recipe: the edge stage installs no TensorFlow, every package is copied, the
model is converted once on the build platform, the build context leaves out state. (Building
takes minutes and docker buildx or buildah: `make images`, not a unit test.)"""

from __future__ import annotations

import configparser
import re
import subprocess

from tests.support.paths import REPO

DOCKERFILE = (REPO / "deploy" / "docker" / "Dockerfile").read_text()


def _extras() -> dict[str, list[str]]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    raw = config["options.extras_require"]
    extras = {}
    for name in raw:
        extras[name] = [line.strip() for line in raw[name].splitlines() if line.strip()]
    return extras


def _requirements(extra: str, extras: dict[str, list[str]]) -> list[str]:
    found = []
    for line in extras[extra]:
        nested = re.fullmatch(r"%\((.+)\)s", line)
        found += _requirements(nested.group(1), extras) if nested else [line]
    return found


def _stage(name: str) -> str:
    return DOCKERFILE.split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_edge_image_installs_no_tensorflow():
    extras = _extras()
    installed = re.search(r'pip install "\.\[([a-z,-]+)\]"', _stage("edge"))
    assert installed is not None
    requirements = [r for e in installed.group(1).split(",") for r in _requirements(e, extras)]
    assert any(r.startswith("ai-edge-litert") for r in requirements)
    assert not [r for r in requirements if r.startswith("tensorflow")]
    # the trainer gets TensorFlow for both architectures
    trainer = _requirements("trainer", extras)
    assert any('platform_machine=="aarch64"' in r for r in trainer if r.startswith("tensorflow"))


def test_every_package_is_copied_and_state_is_ignored():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    top_level = {p.split(".")[0] for p in config["options"]["packages"].split()}
    copied = set(re.findall(r"^COPY (\S+)/ ", DOCKERFILE, re.MULTILINE))
    assert top_level - {"edgeinfer"} <= copied
    assert "proto" in copied  # edgeinfer lives in proto/
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "models", "demo-output", ".state"} <= ignored


def test_model_is_converted_once_on_the_build_platform():
    assert "FROM --platform=$BUILDPLATFORM ${PYTHON} AS model" in DOCKERFILE
    assert "import-pretrained" in _stage("model")
    for target in ("edge", "trainer"):
        assert "COPY --from=model " in _stage(target)
        assert "import-pretrained" not in _stage(target)


def test_image_scripts_explain_themselves():
    for script in ("deploy/docker/debian-base", "scripts/images"):
        subprocess.run(["bash", "-n", str(REPO / script)], check=True)
    usage = subprocess.run(
        [str(REPO / "deploy/docker/debian-base"), "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "debian-base [--ca FILE]... [--work DIR] IMAGE ARCH..." in usage
