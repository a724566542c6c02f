"""Synthetic labelled faces for all seven FER2013 emotions, deterministic by seed.

Shared by the simulator (its cameras' frames) and the cloud trainer (its synthetic data set),
so the simulator can measure accuracy against known labels. A contract module, apart from the
simulator: the trainer's extra must not need the simulator's camera stack. Needs OpenCV
(both extras have it); ``edgeinfer`` itself does not import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True, slots=True)
class Expression:
    """Geometry of one emotion, in face-relative units."""

    mouth_curve: float  # >0 smile, <0 frown
    mouth_open: float  # 0 closed .. 1 wide open
    mouth_width: float
    brow_raise: float  # >0 raised
    brow_slant: float  # >0 inner ends up (sad/fear), <0 inner ends down (angry)
    eye_open: float
    nose_wrinkle: bool = False


EXPRESSIONS: dict[str, Expression] = {
    "angry": Expression(-0.05, 0.0, 0.30, -0.05, -0.45, 0.6),
    "disgust": Expression(-0.10, 0.05, 0.26, -0.03, -0.20, 0.45, nose_wrinkle=True),
    "fear": Expression(-0.05, 0.35, 0.36, 0.12, 0.35, 1.25),
    "happy": Expression(0.22, 0.10, 0.42, 0.02, 0.0, 0.8),
    "sad": Expression(-0.20, 0.0, 0.30, 0.0, 0.45, 0.7),
    "surprise": Expression(0.0, 0.85, 0.22, 0.22, 0.05, 1.4),
    "neutral": Expression(0.0, 0.0, 0.32, 0.0, 0.0, 0.85),
}


@dataclass(frozen=True, slots=True)
class RenderedFace:
    """A frame holding one face, where it is, and its emotion."""

    frame: npt.NDArray[np.uint8]  # (H, W) gray
    box: tuple[int, int, int, int]  # x, y, width, height
    label: int


class FaceRenderer:
    """Draws gray faces with pose, scale, lighting, noise and occlusion variation.

    Args:
        seed: Makes every sequence of renders reproducible.
        frame_size: Side of the square frame in pixels.
        variation: 0 renders canonical faces; 1 the full variation.
    """

    def __init__(self, seed: int = 0, *, frame_size: int = 160, variation: float = 1.0) -> None:
        self._rng = np.random.default_rng(seed)
        self._size = frame_size
        self._variation = variation

    def render(self, label: int | None = None) -> RenderedFace:
        """Render one face; a random emotion unless ``label`` is given."""
        rng, v, size = self._rng, self._variation, self._size
        label = int(rng.integers(len(EMOTIONS))) if label is None else label
        expression = EXPRESSIONS[EMOTIONS[label]]
        background = rng.uniform(30, 200)
        frame = np.full((size, size), background, np.float32)
        scale = size * 0.32 * (1 + v * rng.uniform(-0.2, 0.2))
        cx = size / 2 + v * rng.uniform(-0.12, 0.12) * size
        cy = size / 2 + v * rng.uniform(-0.1, 0.1) * size
        angle = v * rng.uniform(-15, 15)
        skin = float(np.clip(background + rng.choice([-1, 1]) * rng.uniform(50, 90), 60, 240))
        ink = max(0.0, skin - rng.uniform(90, 140))
        canvas = np.zeros_like(frame)
        mask = np.zeros_like(frame)
        center = (round(cx), round(cy))
        axes = (round(scale * 0.8), round(scale))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 1.0, -1)
        canvas[:] = skin
        self._features(canvas, expression, cx, cy, scale, ink)
        rotation = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        canvas = np.asarray(
            cv2.warpAffine(canvas, rotation, (size, size), borderValue=skin), np.float32
        )
        mask = np.asarray(cv2.warpAffine(mask, rotation, (size, size)), np.float32)
        frame = frame * (1 - mask) + canvas * mask
        frame = self._light_and_noise(frame)
        if v > 0 and rng.random() < 0.25 * v:
            self._occlude(frame, cx, cy, scale)
        half_w, half_h = scale * 0.95, scale * 1.15
        x0, y0 = max(0, round(cx - half_w)), max(0, round(cy - half_h))
        x1, y1 = min(size, round(cx + half_w)), min(size, round(cy + half_h))
        image = np.clip(frame, 0, 255).astype(np.uint8)
        return RenderedFace(image, (x0, y0, x1 - x0, y1 - y0), label)

    def _features(
        self,
        canvas: npt.NDArray[np.float32],
        e: Expression,
        cx: float,
        cy: float,
        s: float,
        ink: float,
    ) -> None:
        rng, v = self._rng, self._variation
        jitter = 1 + v * rng.uniform(-0.15, 0.15)
        thick = max(1, round(s * 0.06))
        eye_dx, eye_y = s * 0.35, cy - s * 0.22
        eye_w = s * 0.14
        eye_h = max(1.0, s * 0.07 * e.eye_open * jitter)
        for side in (-1, 1):
            ex = cx + side * eye_dx
            cv2.ellipse(
                canvas,
                (round(ex), round(eye_y)),
                (round(eye_w), round(eye_h)),
                0,
                0,
                360,
                255.0,
                -1,
            )
            cv2.circle(canvas, (round(ex), round(eye_y)), max(1, round(eye_h * 0.8)), ink, -1)
            brow_y = eye_y - s * (0.2 + e.brow_raise * jitter)
            inner = (round(cx + side * s * 0.12), round(brow_y - e.brow_slant * s * 0.18))
            outer = (round(cx + side * s * 0.5), round(brow_y + e.brow_slant * s * 0.12))
            cv2.line(canvas, inner, outer, ink, thick + 1)
        nose_top, nose_bottom = (round(cx), round(cy - s * 0.05)), (round(cx), round(cy + s * 0.2))
        cv2.line(canvas, nose_top, nose_bottom, ink * 0.5 + 60, thick)
        if e.nose_wrinkle:
            for dy in (-0.02, 0.04):
                y = round(cy + dy * s)
                cv2.line(canvas, (round(cx - s * 0.1), y), (round(cx + s * 0.1), y), ink, thick)
        mouth_y = cy + s * 0.48
        half = s * e.mouth_width * jitter
        points = []
        for t in np.linspace(-1, 1, 15):
            x = cx + t * half
            y = mouth_y + e.mouth_curve * s * (1 - t * t)
            points.append((x, y))
        upper = np.array(points, np.int32)
        if e.mouth_open > 0.05:
            lower = np.array(
                [
                    (
                        x,
                        y
                        + e.mouth_open * s * 0.35 * math.sqrt(max(0.0, 1 - ((x - cx) / half) ** 2)),
                    )
                    for x, y in points[::-1]
                ],
                np.int32,
            )
            cv2.fillPoly(canvas, [np.concatenate([upper, lower])], ink * 0.4)
        cv2.polylines(canvas, [upper], False, ink, thick + 1)

    def _light_and_noise(self, frame: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rng, v, size = self._rng, self._variation, self._size
        gain = 1 + v * rng.uniform(-0.3, 0.3)
        ramp = np.linspace(-1, 1, size, dtype=np.float32)
        direction = rng.uniform(0, 2 * math.pi)
        gradient = (np.cos(direction) * ramp[None, :] + np.sin(direction) * ramp[:, None]) * 30 * v
        noise = rng.normal(0, 1 + 8 * v, frame.shape).astype(np.float32)
        lit: npt.NDArray[np.float32] = (frame * gain + gradient + noise).astype(np.float32)
        return lit

    def _occlude(self, frame: npt.NDArray[np.float32], cx: float, cy: float, s: float) -> None:
        rng = self._rng
        w, h = rng.uniform(0.2, 0.5) * s, rng.uniform(0.15, 0.4) * s
        x = cx + rng.uniform(-0.8, 0.8) * s - w / 2
        y = cy + rng.uniform(-0.2, 1.0) * s - h / 2
        cv2.rectangle(
            frame,
            (round(x), round(y)),
            (round(x + w), round(y + h)),
            float(rng.uniform(0, 255)),
            -1,
        )

    def dataset(
        self, count: int, *, side: int = 64
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """``count`` face crops (N, side, side, 1) uint8 with balanced labels."""
        images = np.empty((count, side, side, 1), np.uint8)
        labels = np.arange(count, dtype=np.int64) % len(EMOTIONS)
        self._rng.shuffle(labels)
        for i, label in enumerate(labels):
            rendered = self.render(int(label))
            x, y, w, h = rendered.box
            crop = rendered.frame[y : y + h, x : x + w]
            images[i, :, :, 0] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        return images, labels
