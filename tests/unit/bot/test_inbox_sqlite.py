"""The SQLite inbox: dedup, durability, group commit, dead letters, purge, windows."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.inbox import InboxError, InboxRecord
from bot.inbox_sqlite import SqliteInbox


def record(key: str, *, received_at: float = 1000.0) -> InboxRecord:
    return InboxRecord(
        page_id="104501234567890",
        sender_key="6543210987654321",
        kind="text",
        timestamp_ms=1_700_000_000_000,
        dedup_key=key,
        payload=json.dumps({"message": {"mid": key, "text": "hi"}}),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        received_at=received_at,
    )


class FakeClock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def commits() -> list[int]:
    return []


@pytest.fixture
async def inbox(tmp_path: Path, clock: FakeClock, commits: list[int]) -> AsyncIterator[SqliteInbox]:
    box = SqliteInbox(tmp_path / "inbox.db", on_commit=commits.append, clock=clock)
    await box.open()
    yield box
    await box.close()


async def test_enqueue_assigns_ids_and_returns_the_stored_event(inbox: SqliteInbox) -> None:
    first, second = await inbox.enqueue([record("mid:a"), record("mid:b")])
    assert first is not None and second is not None
    assert second.id > first.id
    assert first.dedup_key == "mid:a"
    assert first.traceparent == record("mid:a").traceparent
    assert first.attempts == 0 and first.replies_sent == 0


async def test_same_dedup_key_is_stored_once(inbox: SqliteInbox) -> None:
    [stored] = await inbox.enqueue([record("mid:a")])
    assert stored is not None
    assert await inbox.enqueue([record("mid:a")]) == [None]
    assert [e.id for e in await inbox.pending()] == [stored.id]


async def test_duplicate_inside_one_enqueue_is_reported(inbox: SqliteInbox) -> None:
    first, second = await inbox.enqueue([record("mid:a"), record("mid:a")])
    assert first is not None
    assert second is None


async def test_concurrent_deliveries_of_one_event_store_it_once(inbox: SqliteInbox) -> None:
    results = await asyncio.gather(*(inbox.enqueue([record("mid:same")]) for _ in range(20)))
    stored = [r[0] for r in results if r[0] is not None]
    assert len(stored) == 1
    assert len(await inbox.pending()) == 1


async def test_concurrent_enqueues_share_commits(inbox: SqliteInbox, commits: list[int]) -> None:
    calls = 200
    results = await asyncio.gather(*(inbox.enqueue([record(f"mid:{i}")]) for i in range(calls)))
    assert all(r[0] is not None for r in results)
    assert sum(commits) == calls
    assert len(commits) < calls  # group commit: several requests per transaction
    assert max(commits) > 1


async def test_events_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "inbox.db"  # parent dirs are created
    box = SqliteInbox(path)
    await box.open()
    [stored] = await box.enqueue([record("mid:a")])
    assert stored is not None
    await box.record_reply_sent(stored.id, 1)
    await box.record_failure(stored.id, 2, "timeout")
    await box.close()

    reopened = SqliteInbox(path)
    await reopened.open()
    try:
        [event] = await reopened.pending()
        assert (event.id, event.dedup_key, event.payload) == (stored.id, "mid:a", stored.payload)
        assert (event.replies_sent, event.attempts, event.last_error) == (1, 2, "timeout")
        assert await reopened.enqueue([record("mid:a")]) == [None]  # dedup survives too
    finally:
        await reopened.close()


def test_an_acknowledged_enqueue_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from bot.inbox import InboxRecord
        from bot.inbox_sqlite import SqliteInbox

        async def main():
            box = SqliteInbox({str(path)!r}, synchronous="NORMAL")
            await box.open()
            for i in range(20):
                rec = InboxRecord("p", "u", "text", 1, f"mid:{{i}}", "{{}}", None, 1.0)
                await box.enqueue([rec])
            print("acked", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9
    assert proc.stdout.strip() == "acked"

    async def count() -> int:
        box = SqliteInbox(path)
        await box.open()
        try:
            return len(await box.pending())
        finally:
            await box.close()

    assert asyncio.run(count()) == 20


async def test_pending_excludes_done_and_dead(inbox: SqliteInbox) -> None:
    a, b, c = await inbox.enqueue([record("mid:a"), record("mid:b"), record("mid:c")])
    assert a and b and c
    await inbox.mark_done(a.id)
    await inbox.dead_letter(b.id, "handler crashed")
    assert [e.id for e in await inbox.pending()] == [c.id]


async def test_dead_letters_are_listed_and_counted(inbox: SqliteInbox) -> None:
    a, b = await inbox.enqueue([record("mid:a", received_at=5.0), record("mid:b", received_at=7.0)])
    assert a and b
    await inbox.record_failure(a.id, 5, "boom")
    await inbox.dead_letter(a.id, "boom")
    [dead] = await inbox.dead_letters()
    assert (dead.id, dead.attempts, dead.last_error) == (a.id, 5, "boom")
    stats = await inbox.stats()
    assert (stats.pending, stats.oldest_pending_received_at, stats.dead_letters) == (1, 7.0, 1)


async def test_replay_moves_dead_letters_back_once(inbox: SqliteInbox) -> None:
    a, b = await inbox.enqueue([record("mid:a"), record("mid:b")])
    assert a and b
    await inbox.record_reply_sent(a.id, 1)
    await inbox.record_failure(a.id, 5, "boom")
    await inbox.dead_letter(a.id, "boom")
    await inbox.dead_letter(b.id, "boom")

    assert await inbox.replay([a.id, 999]) == 1
    [replayed] = await inbox.take_replayed()
    assert replayed.id == a.id
    assert replayed.attempts == 0  # a fresh set of attempts
    assert replayed.replies_sent == 1  # replies already sent stay sent
    assert await inbox.take_replayed() == []
    assert [e.id for e in await inbox.dead_letters()] == [b.id]

    assert await inbox.replay() == 1
    assert {e.id for e in await inbox.pending()} == {a.id, b.id}
    assert await inbox.take_replayed() == []  # pending() already handed them over
    assert (await inbox.stats()).dead_letters == 0


async def test_purge_forgets_old_done_events_only(inbox: SqliteInbox, clock: FakeClock) -> None:
    old, recent, pending, dead = await inbox.enqueue(
        [record("mid:old"), record("mid:recent"), record("mid:pending"), record("mid:dead")]
    )
    assert old and recent and pending and dead
    clock.now = 100.0
    await inbox.mark_done(old.id)
    await inbox.dead_letter(dead.id, "x")
    clock.now = 500.0
    await inbox.mark_done(recent.id)

    assert await inbox.purge(done_before=200.0) == 1
    assert await inbox.enqueue([record("mid:old")]) != [None]  # dedup retention ended
    assert await inbox.enqueue([record("mid:recent")]) == [None]
    assert [e.id for e in await inbox.dead_letters()] == [dead.id]


async def test_window_keeps_the_latest_user_action(inbox: SqliteInbox) -> None:
    assert await inbox.window_opened_at("p", "u") is None
    await inbox.touch_window("p", "u", 2000)
    await inbox.touch_window("p", "u", 1000)  # an older event arriving late
    assert await inbox.window_opened_at("p", "u") == 2000
    await inbox.touch_window("p", "u", 3000)
    assert await inbox.window_opened_at("p", "u") == 3000
    assert await inbox.window_opened_at("other", "u") is None


async def test_a_failing_write_does_not_fail_the_writes_it_shares_a_commit_with(
    inbox: SqliteInbox,
) -> None:
    unstorable = record("mid:\ud800")  # a lone surrogate cannot be encoded as UTF-8
    results = await asyncio.gather(
        *(inbox.enqueue([record(f"mid:{i}")]) for i in range(10)),
        inbox.enqueue([unstorable]),
        return_exceptions=True,
    )
    assert isinstance(results[-1], InboxError)
    assert all(isinstance(r, list) and r[0] is not None for r in results[:-1])
    assert len(await inbox.pending()) == 10


async def test_closed_inbox_refuses_work(tmp_path: Path) -> None:
    box = SqliteInbox(tmp_path / "inbox.db")
    await box.open()
    await box.ping()
    await box.close()
    await box.close()  # idempotent
    with pytest.raises(InboxError):
        await box.enqueue([record("mid:a")])
    with pytest.raises(InboxError):
        await box.ping()
    with pytest.raises(InboxError):
        await box.stats()


async def test_unopenable_path_raises_inbox_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(InboxError):
        await SqliteInbox(tmp_path / "taken").open()


def test_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteInbox(tmp_path / "x.db", synchronous="OFF; DROP TABLE events")


async def test_done_marks_queued_together_share_one_commit(
    inbox: SqliteInbox, commits: list[int]
) -> None:
    events = await inbox.enqueue([record(f"mid:{i}") for i in range(5)])
    commits.clear()
    await asyncio.gather(*(inbox.mark_done_nowait(e.id) for e in events if e is not None))
    assert commits == [5]
    assert await inbox.pending() == []


async def test_a_nowait_write_is_queued_before_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    box = SqliteInbox(path)
    await box.open()
    [stored] = await box.enqueue([record("mid:a")])
    assert stored is not None
    box.mark_done_nowait(stored.id)  # not awaited
    box.touch_window_nowait("p", "u", 2000)
    await box.close()  # close() finishes what was queued

    reopened = SqliteInbox(path)
    await reopened.open()
    try:
        assert await reopened.pending() == []
        assert await reopened.window_opened_at("p", "u") == 2000
    finally:
        await reopened.close()


async def test_done_marks_keep_their_place_among_other_writes(inbox: SqliteInbox) -> None:
    a, b = await inbox.enqueue([record("mid:a"), record("mid:b")])
    assert a and b
    done = inbox.mark_done_nowait(a.id)
    # Queued in the same loop iteration, after the done mark: it must see it.
    assert [e.id for e in await inbox.pending()] == [b.id]
    await done


async def test_nowait_writes_on_a_closed_inbox_raise(tmp_path: Path) -> None:
    box = SqliteInbox(tmp_path / "inbox.db")
    await box.open()
    await box.close()
    with pytest.raises(InboxError):
        box.mark_done_nowait(1)
    with pytest.raises(InboxError):
        box.touch_window_nowait("p", "u", 1)
