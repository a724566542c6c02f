"""The face renderer is deterministic and labelled; on-device preprocessing finds real faces."""

from __future__ import annotations

import numpy as np

from device_sim import EMOTIONS, FaceDetector, FaceRenderer, crop_face
from device_sim.preprocessing import to_gray
from edge_runtime import InputSpec, Normalization

SPEC = InputSpec(64, 64, 1, Normalization.SYMMETRIC)


def test_same_seed_renders_the_same_faces():
    first = [FaceRenderer(3).render() for _ in range(5)]
    second = [FaceRenderer(3).render() for _ in range(5)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.frame, b.frame)
        assert (a.box, a.label) == (b.box, b.label)
    assert not np.array_equal(first[0].frame, FaceRenderer(4).render().frame)


def test_dataset_covers_every_emotion_evenly():
    images, labels = FaceRenderer(0).dataset(70)
    assert images.shape == (70, 64, 64, 1)
    assert images.dtype == np.uint8
    assert np.bincount(labels, minlength=len(EMOTIONS)).tolist() == [10] * 7


def test_detector_finds_the_face_in_a_real_photo_and_crops_to_the_advertised_size():
    from skimage import data

    gray = to_gray(data.astronaut())
    boxes = FaceDetector().detect(gray)
    assert boxes, "no face found in scikit-image's astronaut()"
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 300  # her face is in the upper middle of the photo
    assert 50 < y + h / 2 < 200
    face = crop_face(gray, boxes[0], SPEC)
    assert face.pixels.shape == (64, 64, 1)
    assert face.pixels.dtype == np.uint8


def test_rendered_frame_crops_follow_the_advertised_input():
    rendered = FaceRenderer(1).render(EMOTIONS.index("happy"))
    face = crop_face(rendered.frame, rendered.box, InputSpec(48, 40, 1, Normalization.UNIT))
    assert face.pixels.shape == (48, 40, 1)
    assert rendered.label == 3
