"""``edge-runtime``: serve emotion recognition to every device on an MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from pathlib import Path

from edge_runtime.backends import Model, load_model, load_verified
from edge_runtime.errors import ConfigError, EdgeError, ModelError
from edge_runtime.model_sync import Served, startup_manifest
from edge_runtime.runtime import Runtime
from edge_runtime.settings import Settings, iter_settings, load_settings

_LOGGER = logging.getLogger("edge_runtime")

_DESCRIPTION = """\
Edge inference runtime for KubeEdge. Subscribes to <topic_root>/+/request on the
broker (edgecore's mosquitto), batches faces from all devices, classifies them with
the model from the registry (or --model), and answers on <topic_root>/<device>/result
or the MQTT v5 Response Topic. Publishes a retained ServiceInfo and online/offline
state under <topic_root>/runtime/<runtime_id>/. SIGTERM drains in-flight requests.

The same batcher and model also answer HTTP on --http-port (default 8501): TF Serving's
REST API under /v1 (the blueprint's Android app: POST
/v1/models/model_emotion/versions/4:predict), the Open Inference Protocol (KServe V2)
under /v2, and /metrics, /healthz, /readyz (also on --metrics-port).

Settings come from defaults < --config YAML < EDGE_* environment < flags; every flag
below has an environment twin, e.g. --batch-max-size is EDGE_BATCH_MAX_SIZE.
"""

_EPILOG = """\
example:
  edge-runtime --broker mqtt://127.0.0.1:1883 --runtime-id node-a --metrics-port 9464
  curl -s http://127.0.0.1:8501/v2/models/emotion      # the served model, over HTTP
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line, generated from the declared settings."""
    parser = argparse.ArgumentParser(
        prog="edge-runtime",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML settings file (nested sections, e.g. mqtt: {broker: ...})",
    )
    defaults = Settings()
    for spec in iter_settings():
        flags = [spec.flag] + ([spec.alias] if spec.alias and spec.alias != spec.flag else [])
        value: object = defaults
        for part in spec.key.split("."):
            value = getattr(value, part)
        shown = getattr(value, "value", value)
        parser.add_argument(
            *flags,
            dest=spec.key,
            metavar=spec.type.__name__.upper() if spec.type in (int, float) else "VALUE",
            default=argparse.SUPPRESS,
            help=f"{spec.help} [{spec.env}, default: {shown!r}]",
        )
    return parser


def _startup_model(settings: Settings) -> tuple[Model, Served | None]:
    """The last good twin-delivered version from the cache, else the configured model."""
    cached = startup_manifest(settings)
    if cached is not None:
        manifest, served = cached
        try:
            return load_verified(manifest, settings.model, settings.batch.max_size), served
        except ModelError as exc:
            _LOGGER.warning("cached model %s unusable (%s); using the registry", served, exc)
    return load_model(settings.model, settings.batch.max_size), None


def _import_http() -> None:
    """Import the HTTP doors (aiohttp, orjson: about 0.3 s) while the model loads."""
    for module in ("edge_runtime.web.server", "edge_runtime.web.tfserving", "edge_runtime.web.oip"):
        importlib.import_module(module)


async def _serve(settings: Settings) -> int:
    listening = settings.http.port or settings.metrics.port
    http = asyncio.create_task(asyncio.to_thread(_import_http)) if listening else None
    model, served = await asyncio.to_thread(_startup_model, settings)
    await asyncio.to_thread(model.warm_up)
    if http is not None:
        await http
    runtime = Runtime(settings, model=model, served=served)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runtime.stop)
    try:
        await runtime.run(
            on_ready=lambda: _LOGGER.info(
                "serving %s %s as runtime %s on %s",
                model.ref.name,
                model.ref.version,
                settings.runtime_id,
                settings.mqtt.broker or "its HTTP doors alone (no broker)",
            )
        )
    finally:
        await asyncio.to_thread(runtime.model.close)
    _LOGGER.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge-runtime``; returns the exit status."""
    args = vars(build_parser().parse_args(argv))
    config = args.pop("config", None) or os.environ.get("EDGE_CONFIG") or None
    try:
        settings = load_settings(os.environ, Path(config) if config else None, args)
    except ConfigError as exc:
        print(f"edge-runtime: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_serve(settings))
    except EdgeError as exc:
        _LOGGER.error("%s", exc)  # noqa: TRY400 - a known failure; no traceback needed
        return 1


if __name__ == "__main__":
    sys.exit(main())
