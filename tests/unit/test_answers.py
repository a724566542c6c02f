"""RecentAnswers: a device's retry never runs the model twice."""

from __future__ import annotations

import numpy as np

from edge_runtime.answers import RecentAnswers, Seen, digest
from edge_runtime.messages import FacePixels, Response, Status


def ok(request_id: str) -> Response:
    return Response(request_id=request_id, device_id="cam", status=Status.OK)


def test_a_new_request_then_its_retry_in_progress_then_answered() -> None:
    recent = RecentAnswers(4)
    assert recent.begin("cam", "r1") == (Seen.NEW, None)
    assert recent.begin("cam", "r1") == (Seen.IN_PROGRESS, None)
    recent.finish("cam", "r1", ok("r1"))
    assert recent.begin("cam", "r1") == (Seen.ANSWERED, ok("r1"))


def test_request_ids_are_per_device() -> None:
    recent = RecentAnswers(4)
    recent.begin("cam-a", "r1")
    assert recent.begin("cam-b", "r1")[0] is Seen.NEW


def test_only_ok_answers_are_kept_so_a_retry_after_a_refusal_is_tried_again() -> None:
    recent = RecentAnswers(4)
    recent.begin("cam", "r1")
    recent.finish("cam", "r1", Response("r1", "cam", Status.RESOURCE_EXHAUSTED))
    assert recent.begin("cam", "r1")[0] is Seen.NEW


def test_the_least_recently_used_answer_goes_first() -> None:
    recent = RecentAnswers(2)
    for request_id in ("r1", "r2"):
        recent.begin("cam", request_id)
        recent.finish("cam", request_id, ok(request_id))
    recent.begin("cam", "r1")  # used again: r2 is now the oldest
    recent.begin("cam", "r3")
    recent.finish("cam", "r3", ok("r3"))
    assert len(recent) == 2
    assert recent.begin("cam", "r2")[0] is Seen.NEW
    assert recent.begin("cam", "r1")[0] is Seen.ANSWERED


def test_no_capacity_or_no_request_id_turns_deduplication_off() -> None:
    for recent, request_id in ((RecentAnswers(0), "r1"), (RecentAnswers(4), "")):
        recent.begin("cam", request_id)
        recent.finish("cam", request_id, ok(request_id))
        assert recent.begin("cam", request_id) == (Seen.NEW, None)
        assert not recent.remembers(request_id)  # so the door computes no digest
    assert RecentAnswers(4).remembers("r1")


def test_an_id_reused_for_other_faces_is_a_new_request_never_the_old_answer() -> None:
    """A restarted device counting from 1 again: same id, other faces."""
    first = digest([FacePixels(np.zeros((2, 2, 1), np.uint8))])
    other = digest([FacePixels(np.ones((2, 2, 1), np.uint8))])
    assert first != other
    recent = RecentAnswers(4)
    assert recent.begin("cam", "r1", first) == (Seen.NEW, None)
    assert recent.begin("cam", "r1", first) == (Seen.IN_PROGRESS, None)
    recent.finish("cam", "r1", ok("r1"), first)
    assert recent.begin("cam", "r1", first) == (Seen.ANSWERED, ok("r1"))  # a retry
    assert recent.begin("cam", "r1", other) == (Seen.NEW, None)  # not the old answer
    assert recent.begin("cam", "r1", other) == (Seen.IN_PROGRESS, None)
    answer = Response("r1", "cam", Status.OK, error="second")
    recent.finish("cam", "r1", answer, other)
    assert recent.begin("cam", "r1", other) == (Seen.ANSWERED, answer)
    assert recent.begin("cam", "r1", first)[0] is Seen.NEW  # the old answer is gone


def test_the_digest_reads_every_face_and_non_contiguous_pixels() -> None:
    face = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    assert digest([FacePixels(face)]) != digest([FacePixels(face), FacePixels(face)])
    assert digest([FacePixels(face[:, ::2])]) == digest([FacePixels(face[:, ::2].copy())])
