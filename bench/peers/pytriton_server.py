"""PyTriton server for the bench: the default model on LiteRT behind Triton's dynamic batcher.

Runs inside PyTriton's own environment (``.state/peers/pytriton``), never ours. Usage:
``python pytriton_server.py MODEL.tflite HTTP_PORT GRPC_PORT METRICS_PORT``.
"""

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

model_path, http_port, grpc_port, metrics_port = sys.argv[1], *map(int, sys.argv[2:5])
interpreter = Interpreter(model_path=model_path, num_threads=2)
rows = [0]


def run(faces: np.ndarray) -> np.ndarray:
    """Seven probabilities per 64x64x1 uint8 face (symmetric normalisation)."""
    data = (faces.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) * np.float32(2.0)
    index = interpreter.get_input_details()[0]["index"]
    if data.shape[0] != rows[0]:
        interpreter.resize_tensor_input(index, list(data.shape), strict=False)
        interpreter.allocate_tensors()
        rows[0] = data.shape[0]
    interpreter.set_tensor(index, data)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]["index"]
    return np.array(interpreter.get_tensor(output), dtype=np.float32)


@batch
def infer(face: np.ndarray) -> dict[str, np.ndarray]:
    """Triton's batch in, probabilities out."""
    return {"probabilities": run(face)}


config = TritonConfig(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
with Triton(config=config) as triton:
    triton.bind(
        model_name="emotion",
        infer_func=infer,
        inputs=[Tensor(name="face", dtype=np.uint8, shape=(64, 64, 1))],
        outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(7,))],
        config=ModelConfig(max_batch_size=16, batcher=DynamicBatcher()),
    )
    triton.serve()
