"""``kubeedge-mapper``: the camera mapper and the inference-result mapper."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from kubeedge_twin import Layout, TwinTopics
from kubeedge_twin.dmi.mapper import DEFAULT_EDGECORE_SOCKET, DmiMapper
from kubeedge_twin.versions import DMI, MQTT, KubeEdge
from mappers.camera import CameraMapper
from mappers.metrics import MapperMetrics
from mappers.profile import ProfileError, load_devices
from mappers.results import ResultMapper
from mappers.session import Connection, Session, run_forever

_ENV = "MAPPER_"


def _env(name: str, default: str) -> str:
    return os.environ.get(_ENV + name, default)


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option also reads ``MAPPER_<OPTION>`` from the environment."""
    parser = argparse.ArgumentParser(
        prog="kubeedge-mapper",
        description="KubeEdge mappers for the emotion cameras, next to edgecore's broker. "
        "'camera' bridges each camera's control/status topics to its device twin (desired "
        "capture_fps/enabled down, actual values and online/offline up); 'results' turns the "
        "runtime's answers into last_emotion and emotion_counts twins. Devices come from "
        "KubeEdge 1.4's deviceProfile.json (the node ConfigMap) or Device YAML. Each option "
        "can also be set as MAPPER_<OPTION> (e.g. MAPPER_BROKER).",
    )
    parser.add_argument("--broker", default=_env("BROKER", "mqtt://127.0.0.1:1883"))
    parser.add_argument("--username", default=_env("USERNAME", ""), help="MQTT user")
    parser.add_argument("--password", default=_env("PASSWORD", ""), help="MQTT password")
    parser.add_argument("--ca-file", default=_env("CA_FILE", ""), help="CA for mqtts://")
    parser.add_argument(
        "--kubeedge-version",
        default=_env("KUBEEDGE_VERSION", ""),
        help="the node's KubeEdge release (1.4, 1.17, 1.23...): decides --layout, --transport "
        "and --dmi-edgecore-socket where they are not given (1.4-1.14: MQTT twins; 1.15+: DMI)",
    )
    parser.add_argument(
        "--layout",
        choices=[layout.value for layout in Layout],
        default=_env("LAYOUT", ""),
        help="twin topic layout: 1.4 ($hw/events/device/<name>) or 1.17 (<namespace>/<name>); "
        "default: the release's, else 1.4",
    )
    parser.add_argument(
        "--transport",
        choices=[MQTT, DMI],
        default=_env("TRANSPORT", ""),
        help="how twins reach edgecore: mqtt ($hw/... topics, KubeEdge 1.4-1.14) or dmi "
        "(KubeEdge 1.15+; the camera mapper registers with edgecore for --dmi-protocol, the "
        "results mapper only reports); default: the release's, else mqtt",
    )
    parser.add_argument(
        "--dmi-edgecore-socket",
        default=_env("DMI_EDGECORE_SOCKET", ""),
        help="edgecore's DMI socket: the file (1.15-1.22) or a directory holding dmi.sock "
        "(1.23+); default: the release's, else /etc/kubeedge/dmi.sock",
    )
    parser.add_argument("--topic-root", default=_env("TOPIC_ROOT", "emotion/v1"))
    parser.add_argument(
        "--devices",
        type=Path,
        nargs="+",
        default=None,
        help="deviceProfile.json and/or Device YAML files (default: the 1.4 ConfigMap mount; "
        "with camera --transport dmi none is needed: edgecore hands the mapper its devices)",
    )
    parser.add_argument(
        "--model", default=_env("MODEL", "emotion-camera"), help="serve devices of this model"
    )
    parser.add_argument(
        "--dmi-protocol",
        default=_env("DMI_PROTOCOL", "emotion-camera"),
        help="the cameras' spec.protocol.protocolName (default emotion-camera)",
    )
    parser.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "0")))
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--resync",
        type=float,
        default=float(_env("RESYNC", "30")),
        help="seconds between re-reading desired twins and re-sending actual values and "
        "state (heals an edgecore restart, which the broker does not see; default 30)",
    )
    commands = parser.add_subparsers(dest="mapper", required=True)
    camera = commands.add_parser("camera", help="bridge camera control/status to device twins")
    camera.add_argument(
        "--dmi-socket",
        default=_env("DMI_SOCKET", "/etc/kubeedge/emotion-camera.sock"),
        help="where this mapper serves DeviceMapperService for edgecore",
    )
    camera.add_argument(
        "--report-interval",
        type=float,
        default=float(_env("REPORT_INTERVAL", "1")),
        help="least seconds between two twin reports of one camera (default 1)",
    )
    results = commands.add_parser("results", help="report what each camera sees to its twin")
    results.add_argument(
        "--report-interval",
        type=float,
        default=float(_env("REPORT_INTERVAL", "5")),
        help="least seconds between two twin reports of one camera (default 5)",
    )
    results.add_argument(
        "--window",
        type=int,
        default=int(_env("WINDOW", "100")),
        help="emotion_counts covers this many recent faces (default 100)",
    )
    return parser


_SHUTDOWN_TIMEOUT_S = 10.0


async def serve(
    connection: Connection, session: Session, beside: Coroutine[Any, Any, None] | None = None
) -> None:
    """Run a mapper (and ``beside`` it, its DMI side) until SIGTERM or SIGINT.

    It stops within ``_SHUTDOWN_TIMEOUT_S`` whatever state its connection is in.
    """

    async def both() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_forever(connection, session))
            if beside is not None:
                tg.create_task(beside)

    task = asyncio.create_task(both())
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    stop_requested = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([task, stop_requested], return_when=asyncio.FIRST_COMPLETED)
    stop_requested.cancel()
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        async with asyncio.timeout(_SHUTDOWN_TIMEOUT_S):
            await task
    if not task.done():  # asyncio.run would wait for it forever
        logging.getLogger(__name__).error(
            "mapper did not stop within %.0f s; exiting anyway", _SHUTDOWN_TIMEOUT_S
        )
        logging.shutdown()
        os._exit(1)


def _apply_release(args: argparse.Namespace) -> None:
    """Fill --layout, --transport and --dmi-edgecore-socket from --kubeedge-version.

    Raises:
        ValueError: --kubeedge-version is not a KubeEdge release.
    """
    release = KubeEdge.of(args.kubeedge_version) if args.kubeedge_version else None
    args.layout = args.layout or (release.layout.value if release else Layout.V1_4.value)
    args.transport = args.transport or (release.transport if release else MQTT)
    args.dmi_edgecore_socket = args.dmi_edgecore_socket or (
        release.dmi_socket if release and release.dmi_socket else DEFAULT_EDGECORE_SOCKET
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubeedge-mapper``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _apply_release(args)
    except ValueError as exc:
        parser.error(str(exc))
    args.devices_given = args.devices is not None or bool(_env("DEVICES", ""))
    if args.devices is None:
        args.devices = [
            Path(p) for p in _env("DEVICES", "/opt/kubeedge/deviceProfile.json").split()
        ]
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    over_dmi = args.transport == DMI
    paths = args.devices
    if over_dmi and not args.devices_given:
        paths = [path for path in paths if path.exists()]  # edgecore tells a DMI mapper its devices
    try:
        devices = load_devices(paths, args.model)
    except ProfileError as exc:
        print(f"kubeedge-mapper: {exc}", file=sys.stderr)
        return 2
    if not devices and not (over_dmi and args.mapper == "camera"):
        print(
            f"kubeedge-mapper: no devices of model {args.model} in {args.devices}", file=sys.stderr
        )
        return 2
    topics = TwinTopics(Layout(args.layout))
    metrics = MapperMetrics(args.mapper)
    metrics.serve(args.metrics_port)
    mapper: CameraMapper | ResultMapper
    dmi: DmiMapper | None = None
    if over_dmi:
        dmi = DmiMapper(
            name=f"{args.mapper}-mapper-{os.uname().nodename}",
            protocol=args.dmi_protocol,
            socket=args.dmi_socket if args.mapper == "camera" else "",
            edgecore_socket=args.dmi_edgecore_socket,
            report_only=args.mapper == "results",
        )
    if args.mapper == "camera":
        mapper = CameraMapper(
            devices,
            topics=topics,
            topic_root=args.topic_root,
            report_interval_s=args.report_interval,
            resync_s=args.resync,
            metrics=metrics,
            dmi=dmi,
            model=args.model,
        )
    else:
        mapper = ResultMapper(
            devices,
            topics=topics,
            topic_root=args.topic_root,
            window=args.window,
            report_interval_s=args.report_interval,
            resync_s=args.resync,
            metrics=metrics,
            dmi=dmi,
        )
    connection = Connection(
        args.broker,
        client_id=f"{args.mapper}-mapper-{os.getpid()}",
        username=args.username,
        password=args.password,
        ca_file=args.ca_file,
    )
    logging.getLogger(__name__).info(
        "%s mapper serving %d devices on %s", args.mapper, len(devices), args.broker
    )
    asyncio.run(serve(connection, mapper.session, dmi.run() if dmi is not None else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
