"""The cloud's model, through its Open Inference Protocol door (this same runtime, in the cloud).

Hard faces of one batch go in one ``POST /v2/models/<model>/infer``, as uint8 tensors in the
binary data extension (a 64x64 face is 4 KB; Sedna sends 36-143 KB of JSON for a 48x48 one),
one request per distinct face size. The probabilities come back as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiohttp
import numpy as np
import numpy.typing as npt

from edge_runtime.messages import ModelRef

HEADER_LENGTH = "Inference-Header-Content-Length"


class CloudError(Exception):
    """The cloud answered, but not with probabilities for every face."""


class CloudModel:
    """Asks the cloud's Open Inference Protocol door for probabilities.

    Args:
        url: The door's base URL (``http://cloud-inference:8501``).
        model: The model name the cloud serves.
        token: The bearer token its door asks for (its ``http.token_file``), if any.
    """

    def __init__(self, url: str, model: str, *, token: str = "") -> None:
        self._infer_url = f"{url.rstrip('/')}/v2/models/{model}/infer"
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def infer(
        self, faces: Sequence[npt.NDArray[np.uint8]]
    ) -> tuple[list[tuple[float, ...]], ModelRef]:
        """Probabilities for each face (same order), and the model version that answered.

        Raises:
            CloudError: an answer that is not probabilities for every face.
            aiohttp.ClientError, OSError: the cloud could not be reached or failed.
        """
        if self._session is None:
            # No per-call timeout here: the caller's budget cancels the call.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        answers: list[tuple[float, ...] | None] = [None] * len(faces)
        model = ModelRef("", "")
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, face in enumerate(faces):
            by_shape.setdefault(face.shape, []).append(index)
        for indices in by_shape.values():
            tensor = np.stack([faces[i] for i in indices])
            rows, model = await self._ask(tensor)
            if len(rows) != len(indices):
                raise CloudError(f"{len(rows)} answers for {len(indices)} faces")
            for index, row in zip(indices, rows, strict=True):
                answers[index] = row
        return [row for row in answers if row is not None], model

    async def _ask(self, tensor: npt.NDArray[np.uint8]) -> tuple[list[tuple[float, ...]], ModelRef]:
        data = tensor.tobytes()
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "face",
                        "datatype": "UINT8",
                        "shape": list(tensor.shape),
                        "parameters": {"binary_data_size": len(data)},
                    }
                ],
                "outputs": [{"name": "probabilities"}],
            }
        ).encode()
        session = self._session
        if session is None:
            raise CloudError("the client is closed")
        async with session.post(
            self._infer_url,
            data=header + data,
            headers={
                HEADER_LENGTH: str(len(header)),
                "Content-Type": "application/octet-stream",
                **self._auth,
            },
        ) as response:
            body = await response.read()
            if response.status != 200:
                raise CloudError(f"HTTP {response.status}: {body[:200]!r}")
        try:
            answer = json.loads(body)
            (output,) = [o for o in answer["outputs"] if o["name"] == "probabilities"]
            count, labels = output["shape"]
            flat = [float(v) for v in output["data"]]
            model = ModelRef(str(answer["model_name"]), str(answer["model_version"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CloudError(f"not an inference answer: {exc}") from exc
        if count * labels != len(flat):
            raise CloudError(f"{len(flat)} probabilities for shape [{count}, {labels}]")
        return [tuple(flat[i * labels : (i + 1) * labels]) for i in range(count)], model
