"""MLServer custom runtime for the bench: the default model on LiteRT, as our runtime runs it.

Runs inside MLServer's own environment (``.state/peers/mlserver``), never ours: it imports only
MLServer, numpy and ai-edge-litert. MLServer's adaptive batching merges requests along the
first axis before ``predict`` and splits the outputs after it.
"""

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class LiteRtClassifier(MLModel):
    """64x64x1 uint8 faces in, seven probabilities out (symmetric normalisation inside)."""

    async def load(self) -> bool:
        self._interpreter = Interpreter(model_path=str(self.settings.parameters.uri), num_threads=2)
        self._rows = 0
        return True

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._rows:
            index = self._interpreter.get_input_details()[0]["index"]
            self._interpreter.resize_tensor_input(index, list(batch.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._rows = batch.shape[0]
        self._interpreter.set_tensor(self._interpreter.get_input_details()[0]["index"], batch)
        self._interpreter.invoke()
        output = self._interpreter.get_output_details()[0]["index"]
        return np.array(self._interpreter.get_tensor(output), dtype=np.float32)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        faces = NumpyCodec.decode_input(payload.inputs[0]).reshape(-1, 64, 64, 1)
        batch = (faces.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) * np.float32(2.0)
        probabilities = self._run(batch)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("probabilities", probabilities)],
        )
