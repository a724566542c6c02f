"""Bring your own model: register a user's TFLite classifier after checking it fits its claims."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cloud_trainer.predictors import interpreter_class
from cloud_trainer.registry import ArtefactFile, RegistryError, register
from edgeinfer.normalization import Normalization

NORMALISATIONS = {member.value: member.proto for member in Normalization}
_INPUT = re.compile(r"^(\d{1,4})x(\d{1,4})x([13])$")


def parse_input(text: str) -> tuple[int, int, int]:
    """``HxWxC`` (C 1 or 3) as (height, width, channels).

    Raises:
        RegistryError: another form.
    """
    match = _INPUT.match(text.strip().lower())
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise RegistryError(f"--input {text!r}: expected HxWxC with C 1 or 3, e.g. 48x48x1")
    return int(match[1]), int(match[2]), int(match[3])


def check_tflite(
    model: Path, height: int, width: int, channels: int, labels: Sequence[str]
) -> None:
    """Run ``model`` on two faces of the claimed input: one probability per label each.

    Raises:
        RegistryError: the file does not load, takes another input, or answers otherwise.
    """
    try:
        interpreter = interpreter_class()(model_content=model.read_bytes(), num_threads=1)
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise RegistryError(f"{model}: {len(inputs)} inputs; the runtime feeds one image")
        interpreter.resize_tensor_input(
            inputs[0]["index"], [2, height, width, channels], strict=False
        )
        interpreter.allocate_tensors()
        batch = np.random.default_rng(0).uniform(0.0, 1.0, (2, height, width, channels))
        interpreter.set_tensor(inputs[0]["index"], batch.astype(np.float32))
        interpreter.invoke()
        output = np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    except (ValueError, RuntimeError) as exc:
        raise RegistryError(
            f"{model}: does not run on {height}x{width}x{channels} float32 input: {exc}"
        ) from exc
    if output.shape != (2, len(labels)):
        raise RegistryError(
            f"{model}: output shape {list(output.shape)} for 2 faces; {len(labels)} labels "
            f"given, so [2, {len(labels)}] was expected"
        )
    if not np.isfinite(output).all() or not np.allclose(output.sum(axis=1), 1.0, atol=1e-3):
        raise RegistryError(
            f"{model}: outputs are not probabilities (rows must sum to 1: end with a softmax)"
        )


def add_tflite(
    root: Path,
    model: Path,
    *,
    name: str,
    version: str,
    input_text: str,
    normalisation: str,
    labels: Sequence[str],
    description: str = "",
) -> Path:
    """Check and register a TFLite classifier; return its manifest's path.

    Raises:
        RegistryError: a bad claim, a model that does not fit it, or an existing version.
    """
    height, width, channels = parse_input(input_text)
    if normalisation not in NORMALISATIONS:
        raise RegistryError(
            f"--normalisation {normalisation!r}: one of {', '.join(NORMALISATIONS)}"
        )
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(labels):
        raise RegistryError("--labels: at least two distinct, non-empty labels in output order")
    check_tflite(model, height, width, channels, labels)
    return register(
        root,
        name=name,
        version=version,
        files=[ArtefactFile(model, "model.tflite", "tflite", "float32")],
        height=height,
        width=width,
        channels=channels,
        normalization=NORMALISATIONS[normalisation],
        labels=tuple(labels),
        description=description or f"registered from {model.name}",
    )
