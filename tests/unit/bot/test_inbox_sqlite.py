"""What only the SQLite inbox does: durability, group commit of its writes.

The shared semantics are in the conformance suite (``test_inbox_conformance.py``); the
writer's own guarantees (failure isolation, ordering, close) in ``test_sqlite_writer.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.inbox import InboxError, ReplyState, ReplyUpdate
from bot.inbox_sqlite import SqliteInbox
from bot.state import StateUpdate
from tests.unit.bot.inbox_conformance import PAGE, FakeClock, record, reply


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
    await box.record_failure(stored.id, 2, "timeout")
    [other] = await box.enqueue([record("mid:b")])
    assert other is not None
    sent, unsettled = await box.commit_handled(other.id, [reply(0), reply(1)])
    await box.update_replies([ReplyUpdate(sent.id, ReplyState.SENT, 1)])
    await box.close()

    reopened = SqliteInbox(path)
    await reopened.open()
    try:
        [event] = await reopened.pending()
        assert (event.id, event.dedup_key, event.payload) == (stored.id, "mid:a", stored.payload)
        assert (event.attempts, event.last_error) == (2, "timeout")
        assert await reopened.unsettled_replies() == [unsettled]
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


async def test_unopenable_path_raises_inbox_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(InboxError):
        await SqliteInbox(tmp_path / "taken").open()


def test_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteInbox(tmp_path / "x.db", synchronous="OFF; DROP TABLE events")


async def test_commits_of_handled_events_queued_together_share_one_transaction(
    inbox: SqliteInbox, commits: list[int]
) -> None:
    events = await inbox.enqueue([record(f"mid:{i}") for i in range(5)])
    commits.clear()
    stored = await asyncio.gather(
        *(inbox.commit_handled(e.id, [reply(0), reply(1)]) for e in events if e is not None)
    )
    assert commits == [15]  # 5 events + 10 replies, one commit
    assert [len(s) for s in stored] == [2] * 5
    assert len({r.id for s in stored for r in s}) == 10
    assert [r.id for r in await inbox.unsettled_replies()] == [r.id for s in stored for r in s]


async def test_a_handled_commit_keeps_its_place_among_other_writes(inbox: SqliteInbox) -> None:
    a, b = await inbox.enqueue([record("mid:a"), record("mid:b")])
    assert a and b
    done = asyncio.ensure_future(inbox.commit_handled(a.id, []))
    await asyncio.sleep(0)  # queued first
    # Queued in the same loop iteration, after the commit: it must see it.
    assert [e.id for e in await inbox.pending()] == [b.id]
    await done


async def test_committed_state_survives_a_reopen_and_rides_the_same_group_commit(
    tmp_path: Path, commits: list[int]
) -> None:
    box = SqliteInbox(tmp_path / "inbox.db", on_commit=commits.append)
    await box.open()
    events = await box.enqueue([record(f"mid:{i}", sender=f"user{i}") for i in range(3)])
    commits.clear()
    await asyncio.gather(
        *(
            box.commit_handled(e.id, [reply(0)], StateUpdate(e.page_id, e.sender_key, {"n": i}))
            for i, e in enumerate(events)
            if e is not None
        )
    )
    assert commits == [9]  # 3 events + 3 replies + 3 states, one transaction
    await box.close()
    again = SqliteInbox(tmp_path / "inbox.db")
    await again.open()
    assert [await again.load(PAGE, f"user{i}") for i in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    await again.close()
