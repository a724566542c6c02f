"""``app-sim``: the blueprint's Android app's one request, replayed against TF Serving REST.

futurewei-cloud/kubeedge-android-ai resizes the whole picture to 48x48, sends R, G, B as
pixel/255.0 doubles to ``/v1/models/model_emotion/versions/4:predict`` on port 8501 and lists
the seven scores in FER2013 order (``../shared/tfserving/REST.md`` §1). This program sends
exactly that body, so the edge runtime can be checked against the app without a phone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from device_sim.preprocessing import FaceDetector, to_gray

APP_PATH = "/v1/models/model_emotion/versions/4:predict"
APP_SIDE = 48
FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def app_body(rgb: npt.NDArray[np.uint8]) -> bytes:
    """The app's request body for an RGB picture already 48x48 (REST.md §1).

    Rows of columns of [r, g, b] as pixel / 255.0 doubles, no whitespace, the signature named.
    """
    rows = ",".join(
        "[" + ",".join("[" + ",".join(repr(v / 255.0) for v in px) + "]" for px in row) + "]"
        for row in rgb.tolist()
    )
    return f'{{"signature_name":"serving_default","instances":[[{rows}]]}}'.encode()


def picture(path: Path | None, *, face: bool, side: int = APP_SIDE) -> npt.NDArray[np.uint8]:
    """The picture to send, RGB, ``side`` square (the app's 48).

    A file, or scikit-image's astronaut() photo.

    With ``face``, the first face found is cropped first (the app itself sends the whole
    picture: with a selfie, that is a face).
    """
    if path is None:
        from skimage import data

        rgb = np.asarray(data.astronaut(), np.uint8)  # type: ignore[no-untyped-call]
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read an image from {path}")
        rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)
    if face:
        boxes = FaceDetector().detect(to_gray(rgb))
        if not boxes:
            raise ValueError("no face found in the picture")
        x, y, w, h = boxes[0]
        rgb = rgb[y : y + h, x : x + w]
    return np.asarray(cv2.resize(rgb, (APP_SIDE, APP_SIDE), interpolation=cv2.INTER_AREA), np.uint8)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="app-sim",
        description="Send the reference Android app's request (KubeEdge DL, "
        "futurewei-cloud/kubeedge-android-ai) to an edge runtime's TF Serving REST door: "
        f"POST {APP_PATH} with a 48x48x3 RGB picture as pixel/255 floats. Prints the "
        "request, the answer and the top emotion; exits 1 unless the answer is 200 with 7 "
        "probabilities.",
        epilog="example: app-sim --url http://127.0.0.1:8501 --face",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8501", help="the runtime's HTTP door")
    parser.add_argument("--image", type=Path, help="JPEG/PNG to send (default: a real photo)")
    parser.add_argument("--face", action="store_true", help="crop the first face found first")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``app-sim``."""
    args = build_parser().parse_args(argv)
    try:
        body = app_body(picture(args.image, face=args.face))
    except ValueError as exc:
        print(f"app-sim: {exc}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + APP_PATH
    request = urllib.request.Request(  # noqa: S310 - the user names the URL
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    print(f"POST {url}  ({len(body):,} bytes: 1 instance of 48x48x3 RGB floats in [0, 1])")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as reply:  # noqa: S310
            status, text = reply.status, reply.read().decode()
            version = reply.headers.get("X-Edge-Model-Version", "?")
    except urllib.error.HTTPError as exc:
        status, text, version = exc.code, exc.read().decode(), "?"
    except OSError as exc:
        print(f"app-sim: {exc}", file=sys.stderr)
        return 1
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"{status} in {elapsed_ms:.1f} ms (model version {version}): {text}")
    try:
        (scores,) = json.loads(text)["predictions"]
    except (ValueError, KeyError, TypeError):
        return 1
    if status != 200 or len(scores) != len(FER2013):
        return 1
    listed = ", ".join(f"{label} {score:.3f}" for label, score in zip(FER2013, scores, strict=True))
    print(f"the app lists: {listed}  (top: {FER2013[int(np.argmax(scores))]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
