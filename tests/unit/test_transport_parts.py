"""The transport's parts that need no socket: in-order acks and one write per loop turn."""

from __future__ import annotations

from collections.abc import Callable

from edge_runtime.transport import AckSequencer, TurnWriter


def test_acks_leave_in_arrival_order_whatever_order_the_answers_finish_in() -> None:
    sent: list[int] = []
    acks = AckSequencer(sent.append)
    for mid in (5, 6, 7):
        acks.received(mid)
    acks.done(7)
    acks.done(6)
    assert sent == []
    assert len(acks) == 3
    acks.done(5)
    assert sent == [5, 6, 7]
    assert len(acks) == 0


def test_an_ack_of_a_packet_not_held_is_ignored_and_a_reset_voids_the_rest() -> None:
    sent: list[int] = []
    acks = AckSequencer(sent.append)
    acks.received(1)
    acks.done(99)
    acks.reset()
    acks.done(1)
    assert sent == []
    assert len(acks) == 0


def test_the_packets_of_one_turn_leave_in_one_write_in_order() -> None:
    writes: list[bytes] = []
    scheduled: list[Callable[[], None]] = []
    writer = TurnWriter(writes.append, scheduled.append)
    for packet in (b"a", b"b", b"c"):
        writer.add(packet)
    assert writes == []
    assert len(scheduled) == 1
    scheduled.pop()()
    writer.add(b"d")
    scheduled.pop()()
    assert writes == [b"abc", b"d"]


def test_a_cleared_turn_writes_nothing() -> None:
    writes: list[bytes] = []
    scheduled: list[Callable[[], None]] = []
    writer = TurnWriter(writes.append, scheduled.append)
    writer.add(b"ack of a lost connection")
    writer.clear()
    scheduled.pop()()
    assert writes == []
