"""Run KubeEdge's real edgecore as a plain process: no kubelet, no container runtime, no cluster.

The binary is built from KubeEdge's source by ``scripts/build-edgecore`` (or is the user's own,
``EDGECORE_BIN``). The config starts from the binary's own ``--defaultconfig`` and changes only
what running here needs (``../shared/kubeedge/REAL-EDGECORE.md`` says why for each key): edged,
edgeStream, serviceBus, taskManager, dbTest (and 1.4's edgeMesh) off; metaServer off; the
database, the DMI socket directory and the certificates under the run's directory; edgehub on the
websocket to our CloudHub; eventbus on the external broker. Edgecore rewrites the file on its
first start (it stamps its version), so the file is written again before every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgeinfer.broker import Broker
from kubeedge_sim.certs import Certificates

# What each KubeEdge release means here: the Device API, twins over DMI or MQTT, topic layout.
CURRENT = "v1.23.1"  # KubeEdge 1.15+: Devices as DMI resources
LEGACY = "v1.4.0"  # KubeEdge 1.4: twins over MQTT, the blueprint's release


def is_current(version: str) -> bool:
    """True for KubeEdge 1.15 and later (DMI), False for 1.4-1.14 (MQTT twins)."""
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a KubeEdge version: {version!r}")
    return (int(match[1]), int(match[2])) >= (1, 15)


def binary_sha256(binary: str) -> str:
    """The first 16 hex digits of the binary's sha256.

    An edgecore built without version ldflags has no version to ask it for.
    """
    digest = hashlib.sha256()
    with Path(binary).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class EdgecorePaths:
    """Where one edgecore run keeps its files."""

    directory: Path

    @property
    def config(self) -> Path:
        """Edgecore's config file (rewritten before every start)."""
        return self.directory / "edgecore.yaml"

    @property
    def database(self) -> Path:
        """Edgecore's sqlite database (metamanager and devicetwin)."""
        return self.directory / "edgecore.db"

    @property
    def dmi(self) -> Path:
        """The DMI socket directory (edgecore serves ``<dir>/dmi.sock``)."""
        return self.directory / "dmi"

    @property
    def cri_socket(self) -> Path:
        """The CRI stub's socket (1.4 only)."""
        return self.directory / "cri.sock"

    @property
    def log(self) -> Path:
        """Edgecore's log (appended to across restarts)."""
        return self.directory / "edgecore.log"


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    tree[keys[-1]] = value


def edgecore_config(
    default: Mapping[str, Any],
    *,
    current: bool,
    paths: EdgecorePaths,
    certs: Certificates,
    node: str,
    hub_port: int,
    broker: str,
) -> dict[str, Any]:
    """The binary's default config with the keys running here needs (see the module docstring)."""
    config: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(default)))
    broker_tcp = Broker.parse(broker).tcp
    modules = config["modules"]
    settings: dict[str, Any] = {
        "database.dataSource": str(paths.database),
        "modules.edged.hostnameOverride": node,
        "modules.edged.enable": False,
        "modules.edgeStream.enable": False,
        "modules.serviceBus.enable": False,
        "modules.dbTest.enable": False,
        "modules.metaManager.enable": True,
        "modules.deviceTwin.enable": True,
        "modules.edgeHub.enable": True,
        "modules.edgeHub.tlsCaFile": str(certs.ca),
        "modules.edgeHub.tlsCertFile": str(certs.edge_cert),
        "modules.edgeHub.tlsPrivateKeyFile": str(certs.edge_key),
        "modules.edgeHub.token": "",
        "modules.edgeHub.httpServer": "https://127.0.0.1:1",  # token bootstrap only: never used
        "modules.edgeHub.websocket.enable": True,
        "modules.edgeHub.websocket.server": f"127.0.0.1:{hub_port}",
        "modules.edgeHub.quic.enable": False,
        "modules.eventBus.enable": True,
        "modules.eventBus.mqttMode": 2,  # external broker only
        "modules.eventBus.mqttServerExternal": broker_tcp,
    }
    if current:
        settings |= {
            "modules.taskManager.enable": False,
            "modules.metaManager.metaServer.enable": False,
            "modules.deviceTwin.dmiSockPath": str(paths.dmi),
            "modules.edgeHub.rotateCertificates": False,
        }
    else:
        # edged is built even when disabled and needs a CRI runtime answering Version.
        settings |= {
            "modules.edgeMesh.enable": False,
            "modules.edged.runtimeType": "remote",
            "modules.edged.remoteRuntimeEndpoint": f"unix://{paths.cri_socket}",
            "modules.edged.remoteImageEndpoint": f"unix://{paths.cri_socket}",
            "modules.edged.enableMetrics": False,
            "modules.edged.cgroupsPerQOS": False,
        }
    for path, value in settings.items():
        if path.split(".")[1] in modules or not path.startswith("modules."):
            _set(config, path, value)
    return config


class RealEdgecore:
    """One edgecore process on this machine.

    Args:
        binary: The edgecore executable.
        version: The KubeEdge release it was built from (``v1.23.1``, ``v1.4.0``).
        directory: The run's directory (config, database, DMI socket, log; keep paths short:
            Unix sockets must stay under 108 bytes).
        certs: The run's certificates (edge side).
        node: The node name (``hostnameOverride``; the edge certificate's CN names it).
        hub_port: CloudHub's websocket port on 127.0.0.1.
        broker: The edge node's MQTT broker URL.
    """

    def __init__(
        self,
        binary: str,
        version: str,
        directory: Path,
        certs: Certificates,
        *,
        node: str,
        hub_port: int,
        broker: str,
    ) -> None:
        self.binary = binary
        self.version = version
        self.current = is_current(version)
        self.paths = EdgecorePaths(directory)
        self._certs = certs
        self._node = node
        self._hub_port = hub_port
        self._broker = broker
        self._process: asyncio.subprocess.Process | None = None
        self._cri: Any = None
        self._default: dict[str, Any] | None = None

    async def _default_config(self) -> dict[str, Any]:
        if self._default is None:
            process = await asyncio.create_subprocess_exec(
                self.binary,
                "--defaultconfig",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"{self.binary} --defaultconfig failed: {err.decode()[-500:]}")
            self._default = yaml.safe_load(out)
        return self._default

    async def start(self) -> None:
        """Write the config and start edgecore (its log: ``paths.log``)."""
        self.paths.directory.mkdir(parents=True, exist_ok=True)
        self.paths.dmi.mkdir(exist_ok=True)
        config = edgecore_config(
            await self._default_config(),
            current=self.current,
            paths=self.paths,
            certs=self._certs,
            node=self._node,
            hub_port=self._hub_port,
            broker=self._broker,
        )
        self.paths.config.write_text(yaml.safe_dump(config))
        if not self.current and self._cri is None:
            from kubeedge_sim.cri import serve_version  # grpc only for 1.4's edged

            self._cri = serve_version(str(self.paths.cri_socket))
        env = dict(os.environ, CHECK_EDGECORE_ENVIRONMENT="false")
        with self.paths.log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                "--config",
                str(self.paths.config),
                "-v",
                "4",
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self._process is not None else None

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def close(self) -> None:
        """Stop edgecore and the CRI stub."""
        await self.stop()
        if self._cri is not None:
            self._cri.stop(0)
            self._cri = None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of edgecore's log, for failure messages."""
        with contextlib.suppress(OSError):
            return self.paths.log.read_text(errors="replace")[-chars:]
        return ""
