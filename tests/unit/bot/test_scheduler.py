"""The pure per-key scheduler, driven by a fake clock: order, holds, back-off, readiness."""

from __future__ import annotations

from bot.scheduler import Scheduler


def test_a_key_runs_its_items_one_at_a_time_in_order() -> None:
    s = Scheduler[str]()
    for ts, name in ((3, "c"), (1, "a"), (2, "b")):
        s.add("alice", (ts, ts), name, ready_at=0.0)
    taken = []
    while (got := s.take(now=0.0)) is not None:
        taken.append(got[1])
        assert s.take(now=0.0) is None  # busy until done
        s.done("alice")
    assert taken == ["a", "b", "c"] and len(s) == 0


def test_keys_run_side_by_side() -> None:
    s = Scheduler[str]()
    s.add("alice", (1,), "a1", ready_at=0.0)
    s.add("alice", (2,), "a2", ready_at=0.0)
    s.add("bob", (1,), "b1", ready_at=0.0)
    assert {s.take(0.0), s.take(0.0)} == {("alice", "a1"), ("bob", "b1")}
    assert s.take(0.0) is None and s.busy == 2 and len(s) == 3


def test_an_item_is_held_until_ready_and_a_late_earlier_item_overtakes_it() -> None:
    s = Scheduler[str]()
    s.add("alice", (20,), "later", ready_at=10.1)
    assert s.take(now=10.0) is None and s.next_due() == 10.1
    s.add("alice", (10,), "earlier", ready_at=10.15)  # arrived late, within the window
    assert s.take(now=10.1) is None  # the head is now the earlier one, still held
    assert s.next_due() == 10.15
    assert s.take(now=10.15) == ("alice", "earlier")
    s.done("alice")
    assert s.take(now=10.15) == ("alice", "later")


def test_a_retried_item_blocks_only_its_key_until_its_back_off_ends() -> None:
    s = Scheduler[str]()
    s.add("alice", (1,), "poison", ready_at=0.0)
    s.add("alice", (2,), "next", ready_at=0.0)
    assert s.take(0.0) == ("alice", "poison")
    s.retry("alice", "poison", order=(1,), at=60.0)
    s.add("bob", (1,), "bob", ready_at=0.0)
    assert s.take(1.0) == ("bob", "bob")
    s.done("bob")
    assert s.take(59.9) is None and s.next_due() == 60.0
    assert s.take(60.0) == ("alice", "poison")
    s.done("alice")
    assert s.take(60.0) == ("alice", "next")


def test_next_due_is_none_when_only_busy_keys_are_left() -> None:
    s = Scheduler[str]()
    assert s.next_due() is None
    s.add("alice", (1,), "a", ready_at=5.0)
    assert s.next_due() == 5.0
    s.take(5.0)
    assert s.next_due() is None


def test_clear_returns_what_was_waiting() -> None:
    s = Scheduler[str]()
    s.add("a", (1,), "x", ready_at=0.0)
    s.add("b", (1,), "y", ready_at=9.0)
    s.take(0.0)
    assert s.clear() == ["y"] and len(s) == 0


def test_expedite_ends_a_back_off_early() -> None:
    s = Scheduler[str]()
    s.add("alice", (1,), "waits for an echo", ready_at=0.0)
    s.take(0.0)
    s.retry("alice", "waits for an echo", order=(1,), at=10.0)
    s.expedite("alice", now=2.0)
    s.expedite("nobody", now=2.0)
    assert s.next_due() == 2.0 and s.take(2.0) == ("alice", "waits for an echo")
