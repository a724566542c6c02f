"""KubeEdge in the tests: the stand-in, the real edgecore's binary, KubeEdge's CRDs."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeinfer.twins import RUNTIME_TWINS
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceDefinition, Layout
from tests.support.paths import KUBEEDGE_FILES, REPO


@contextlib.contextmanager
def standin(broker: Any, layout: Layout, *device_names: str) -> Iterator[EdgecoreStandIn]:
    """The edgecore stand-in on ``broker`` with runtime devices holding the model twins."""
    twin_store = TwinStore()
    service = EdgecoreStandIn(
        broker.url, twin_store, layout=layout, client_id=f"standin-{device_names[0]}"
    )
    service.start()
    service.add_devices(
        [
            DeviceDefinition(name, desired={n: ("", "string") for n in RUNTIME_TWINS})
            for name in device_names
        ]
    )
    try:
        yield service
    finally:
        service.stop()
        twin_store.close()


def reported_twins(service: EdgecoreStandIn, device_id: str) -> dict[str, str]:
    """The non-empty reported (actual) twin values of ``device_id`` in the stand-in."""
    device = service.engine.device(device_id)
    assert device is not None
    return {n: t.actual.value for n, t in device.twins.items() if t.actual and t.actual.value}


@contextlib.contextmanager
def dmi_standin(
    broker: Any, sockets: Path, client_id: str, *definitions: DeviceDefinition
) -> Iterator[EdgecoreStandIn]:
    """The stand-in playing KubeEdge 1.23 (DMI on ``sockets``/dmi.sock), 1.17 topic layout."""
    twin_store = TwinStore()
    service = EdgecoreStandIn(
        broker.url,
        twin_store,
        layout=Layout.V1_17,
        client_id=client_id,
        dmi_socket=str(sockets / "dmi.sock"),
    )
    service.start()
    service.add_devices(definitions)
    try:
        yield service
    finally:
        service.stop()
        twin_store.close()


@contextlib.contextmanager
def socket_directory() -> Iterator[Path]:
    """A short directory for Unix sockets (their paths must stay under 108 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dmi-") as directory:
        yield Path(directory)


def crd_schema(kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of KubeEdge's CRD for ``kind`` (v1alpha2: v1.4.0, v1beta1: v1.23.1)."""
    tag = "v1.4.0" if version == "v1alpha2" else "v1.23.1"
    crd_file = KUBEEDGE_FILES / tag / "crds" / f"devices_{version}_{kind.lower()}.yaml"
    if not crd_file.is_file():
        pytest.fail(f"KubeEdge CRD {crd_file} not found (third_party/kubeedge)")
    crd = yaml.safe_load(crd_file.read_text())
    if "validation" in crd["spec"]:  # apiextensions v1beta1 (KubeEdge 1.4)
        schema: dict[str, Any] = crd["spec"]["validation"]["openAPIV3Schema"]
        return schema
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = served["schema"]["openAPIV3Schema"]
            return schema
    pytest.fail(f"{crd_file} does not serve {version}")


def edgecore_binary(version: str) -> str:
    """KubeEdge's real edgecore for ``version``: $EDGECORE_BIN (for the DMI release), else built
    once from KubeEdge's source by scripts/build-edgecore (minutes the first time, cached).

    Skipped, with the build script's reason, only when no source could be had; a build that
    fails is a failure (EDGE_REQUIRE_EDGECORE=1 makes a missing source fail too).
    """
    own = os.environ.get("EDGECORE_BIN", "")
    if own and version != "v1.4.0":
        return own
    built = subprocess.run(
        [str(REPO / "scripts" / "build-edgecore"), version], capture_output=True, text=True
    )
    if built.returncode == 2 and os.environ.get("EDGE_REQUIRE_EDGECORE") != "1":
        pytest.skip(f"edgecore {version} unavailable: {built.stderr.strip()}")
    if built.returncode != 0:
        pytest.fail(f"cannot build edgecore {version}: {built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1]
