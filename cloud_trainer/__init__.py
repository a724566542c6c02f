"""Cloud side: train, evaluate, export and version emotion models."""

import os

# oneDNN's CPU kernels crashed (heap corruption) while training the fer model here; the
# switch is read when TensorFlow loads, so it is set before any submodule imports it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__all__: list[str] = []
