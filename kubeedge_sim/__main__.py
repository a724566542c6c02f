"""``kubeedge-sim``: a real edgecore on this machine, with the cloud half played by our CloudHub."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from kubeedge_sim.edgecore import CURRENT, binary_sha256
from kubeedge_sim.node import EdgeNode, load_documents

_LOGGER = logging.getLogger("kubeedge_sim")
REPO = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="kubeedge-sim",
        description="Run KubeEdge's real edgecore as a plain process (no kubelet, no container "
        "runtime) and play the cloud half it connects to: a CloudHub on 127.0.0.1 (websocket, "
        "mutual TLS, certificates made per run) that sends what cloudcore's device controller "
        "sends for the Devices given, and takes desired-value edits from the broker "
        "(`kubeedge-twin-sim set-desired`, `cloud-trainer push`).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("edgecore", help="run edgecore and the CloudHub until SIGTERM")
    run.add_argument(
        "--edgecore-bin",
        default=os.environ.get("EDGECORE_BIN", ""),
        help="the edgecore executable (default: $EDGECORE_BIN, else scripts/build-edgecore "
        "VERSION builds or finds it)",
    )
    run.add_argument(
        "--version",
        default=CURRENT,
        help=f"the KubeEdge release edgecore was built from: v1.4.0 (MQTT twins) or 1.15+ "
        f"such as {CURRENT} (DMI); default {CURRENT}",
    )
    run.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="the node's MQTT broker")
    run.add_argument("--node", default="edge-node", help="the edge node's name")
    run.add_argument(
        "--dir", type=Path, required=True, help="run directory (config, edge.db, dmi/, log)"
    )
    run.add_argument(
        "--devices",
        type=Path,
        nargs="*",
        default=[],
        help="Device and DeviceModel YAML files (v1beta1 for 1.15+, v1alpha2 for 1.4), bound "
        "to --node",
    )
    return parser


def find_binary(version: str) -> str:
    """The edgecore binary for ``version``: built (or found in the cache) by the project's script.

    Raises:
        RuntimeError: with the build script's message, when there is none.
    """
    script = REPO / "scripts" / "build-edgecore"
    if not script.is_file():
        raise RuntimeError("no scripts/build-edgecore beside this install: pass --edgecore-bin")
    built = subprocess.run([str(script), version], capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError(built.stderr.strip() or f"build-edgecore {version} failed")
    return built.stdout.strip().splitlines()[-1]


async def _run(args: argparse.Namespace) -> int:
    binary = args.edgecore_bin or find_binary(args.version)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    args.dir.mkdir(parents=True, exist_ok=True)
    async with EdgeNode(
        binary, args.version, args.dir.resolve(), node=args.node, broker=args.broker
    ) as node:
        _LOGGER.info(
            "edgecore %s (%s, sha256 %s) connected to the CloudHub on 127.0.0.1:%d; node %s",
            args.version,
            binary,
            binary_sha256(binary),
            node.hub.port,
            args.node,
        )
        if node.current:
            _LOGGER.info("DMI: %s/dmi.sock", node.dmi_directory)
        await node.apply(load_documents(args.devices))
        async with asyncio.TaskGroup() as tasks:
            relay = tasks.create_task(node.relay_cloud_updates())
            await stop.wait()
            relay.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubeedge-sim``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_run(args))
    except RuntimeError as exc:
        print(f"kubeedge-sim: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
