"""Every Python package in the tree is declared, so that installs (images, extras) carry it."""

from __future__ import annotations

import configparser

from tests.support.paths import REPO

ROOTS = {
    "edge_runtime": "edge_runtime",
    "kubeedge_twin": "kubeedge_twin",
    "device_sim": "device_sim",
    "cloud_trainer": "cloud_trainer",
    "mappers": "mappers",
    "edgeinfer": "proto/edgeinfer",
}


def test_every_package_directory_is_in_setup_cfg():
    """edge_runtime.web was once missing: editable installs worked, built ones could not start."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    declared = set(config["options"]["packages"].split())
    found = set()
    for name, directory in ROOTS.items():
        base = REPO / directory
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            found.add(".".join([name, *relative.parts]))
    assert found <= declared, sorted(found - declared)
