"""MemoryInbox keeps the durable inbox's semantics: dedup, states, replay, windows, purge."""

from __future__ import annotations

import pytest

from bot.inbox import InboxError, InboxRecord
from bot.inbox_memory import MemoryInbox


def rec(key: str, received_at: float = 100.0) -> InboxRecord:
    return InboxRecord(
        page_id="p",
        sender_key="u",
        kind="text",
        timestamp_ms=1,
        dedup_key=key,
        payload="{}",
        traceparent=None,
        received_at=received_at,
    )


async def test_same_dedup_key_is_stored_once() -> None:
    inbox = MemoryInbox()
    first, again, other = await inbox.enqueue([rec("a"), rec("a"), rec("b")])
    assert first is not None and again is None and other is not None
    assert [e.dedup_key for e in await inbox.pending()] == ["a", "b"]
    assert await inbox.enqueue([rec("a")]) == [None]  # also after the first is done
    await inbox.mark_done(first.id)
    assert await inbox.enqueue([rec("a")]) == [None]


async def test_progress_is_visible_in_pending_after_a_restart() -> None:
    inbox = MemoryInbox()
    (event,) = await inbox.enqueue([rec("a")])
    assert event is not None
    await inbox.record_reply_sent(event.id, 2)
    await inbox.record_failure(event.id, 1, "boom")
    (again,) = await inbox.pending()
    assert (again.replies_sent, again.attempts, again.last_error) == (2, 1, "boom")


async def test_dead_letters_replay_to_pending_with_fresh_attempts() -> None:
    inbox = MemoryInbox()
    a, b = await inbox.enqueue([rec("a"), rec("b")])
    assert a is not None and b is not None
    await inbox.record_failure(a.id, 5, "bad")
    await inbox.dead_letter(a.id, "bad")
    await inbox.dead_letter(b.id, "bad")
    assert (await inbox.stats()).dead_letters == 2 and await inbox.pending() == []
    assert await inbox.replay([a.id]) == 1
    (replayed,) = await inbox.take_replayed()
    assert (replayed.id, replayed.attempts) == (a.id, 0)
    assert await inbox.take_replayed() == []
    assert [e.id for e in await inbox.dead_letters()] == [b.id]


async def test_stats_report_pending_and_oldest() -> None:
    inbox = MemoryInbox()
    await inbox.enqueue([rec("a", 50.0), rec("b", 60.0)])
    stats = await inbox.stats()
    assert (stats.pending, stats.oldest_pending_received_at, stats.dead_letters) == (2, 50.0, 0)


async def test_purge_forgets_old_done_events_and_their_dedup_keys() -> None:
    now = [1000.0]
    inbox = MemoryInbox(clock=lambda: now[0])
    (event,) = await inbox.enqueue([rec("a")])
    assert event is not None
    await inbox.mark_done(event.id)
    now[0] = 2000.0
    assert await inbox.purge(done_before=1500.0) == 1
    assert (await inbox.enqueue([rec("a")]))[0] is not None


async def test_window_keeps_the_latest_action() -> None:
    inbox = MemoryInbox()
    assert await inbox.window_opened_at("p", "u") is None
    await inbox.touch_window("p", "u", 200)
    await inbox.touch_window("p", "u", 100)
    assert await inbox.window_opened_at("p", "u") == 200


async def test_closed_inbox_refuses_work() -> None:
    inbox = MemoryInbox()
    await inbox.open()
    await inbox.close()
    with pytest.raises(InboxError):
        await inbox.ping()
    with pytest.raises(InboxError):
        await inbox.enqueue([rec("a")])
