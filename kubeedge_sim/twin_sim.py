"""``kubeedge-twin-sim``: the edgecore stand-in (DeviceTwin + cloud) and its cloud CLI."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from kubeedge_sim.cloud import fetch_twins, publish_cloud_update, twin_values
from kubeedge_sim.standin import EdgecoreStandIn
from kubeedge_sim.store import TwinStore
from kubeedge_twin.crd import load_definitions
from kubeedge_twin.topics import Layout


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="kubeedge-twin-sim",
        description="A stand-in for edgecore's DeviceTwin and the cloud, for demos and tests "
        "on one machine. Real deployments use edgecore and the Kubernetes API.",
    )
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    parser.add_argument(
        "--layout",
        choices=[x.value for x in Layout],
        default="1.4",
        help="DeviceTwin topic layout (default 1.4)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="answer DeviceTwin topics until SIGTERM")
    serve.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    serve.add_argument("--node", default="edge-node", help="edge node name")
    serve.add_argument(
        "--kubeedge",
        choices=["1.4", "1.23"],
        default="1.4",
        help="which edgecore to play: 1.4 (desired values as MQTT deltas; KubeEdge 1.4-1.14) "
        "or 1.23 (desired values to the Device's mapper over DMI, no MQTT delta; serves "
        "DeviceManagerService on --dmi-socket; KubeEdge 1.15-1.23). Default 1.4",
    )
    serve.add_argument(
        "--dmi-socket",
        default="/etc/kubeedge/dmi.sock",
        help="with --kubeedge 1.23: where to serve DMI (edgecore's dmi.sock)",
    )
    serve.add_argument(
        "--devices",
        type=Path,
        nargs="*",
        default=[],
        help="Device YAML files (v1alpha2 or v1beta1) to bind to this node",
    )
    desired = commands.add_parser(
        "set-desired",
        help="set desired twin values as editing the Device in the cloud does (the simulated "
        "cloud's input, kubeedge-sim/cloud/<device>/desired)",
    )
    desired.add_argument("device", help="device id (name; namespace/name for 1.17)")
    desired.add_argument("values", nargs="+", metavar="NAME=VALUE")
    get = commands.add_parser("get", help="print a device's twins (twin/get)")
    get.add_argument("device", help="device id")
    get.add_argument("--table", action="store_true", help="one line per twin: desired, reported")
    return parser


def _serve(args: argparse.Namespace) -> int:
    store = TwinStore(args.db)
    standin = EdgecoreStandIn(
        args.broker,
        store,
        layout=Layout(args.layout),
        node=args.node,
        dmi_socket=args.dmi_socket if args.kubeedge == "1.23" else None,
    )
    standin.start()
    standin.add_devices(load_definitions(args.devices))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.getLogger(__name__).info(
        "edgecore stand-in (KubeEdge %s) serving node %s", args.kubeedge, args.node
    )
    stop.wait()
    standin.stop()
    store.close()
    return 0


def _set_desired(args: argparse.Namespace) -> int:
    values = dict(item.split("=", 1) for item in args.values)
    publish_cloud_update(args.broker, args.device, values)
    return 0


def _get(args: argparse.Namespace) -> int:
    try:
        twins = fetch_twins(args.broker, args.device)
    except TimeoutError:
        print("no answer from the stand-in", file=sys.stderr)
        return 1
    if not args.table:
        print(json.dumps({"twin": twins}, indent=2))
        return 0
    desired, reported = twin_values(twins, "expected"), twin_values(twins, "actual")
    for name in sorted(twins):
        print(f"{name}: desired={desired.get(name, '')!r} reported={reported.get(name, '')!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubeedge-twin-sim``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"serve": _serve, "set-desired": _set_desired, "get": _get}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
