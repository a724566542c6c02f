"""RecentAnswers: a device's retry never runs the model twice."""

from __future__ import annotations

from edge_runtime.answers import RecentAnswers, Seen
from edge_runtime.messages import Response, Status


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
