"""What a user of ``GroupCommitWriter`` relies on: durable before resolved, one COMMIT per
batch, failure isolation, ordering, a close that finishes queued work.

The inbox's own SQL is tested in ``test_inbox_sqlite.py`` and the conformance suite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.sqlite_writer import Batched, GroupCommitWriter


class StoreError(RuntimeError):
    """The error type the writer is told to raise."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS parents (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS rows (
    id        INTEGER PRIMARY KEY,
    v         TEXT NOT NULL,
    parent_id INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
);
"""


def _connector(path: Path) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    return connect


def _writer(path: Path, **options: Any) -> GroupCommitWriter:
    """A writer on ``path`` whose connection creates the test schema."""
    connect = _connector(path)

    def connect_writer() -> sqlite3.Connection:
        conn = connect()
        conn.executescript(_SCHEMA)
        return conn

    return GroupCommitWriter(connect_writer, connect, error=StoreError, name="test", **options)


def _insert(value: str | None, parent_id: int | None = None) -> Callable[..., int]:
    def op(conn: sqlite3.Connection) -> int:
        sql = "INSERT INTO rows (v, parent_id) VALUES (?, ?)"
        return conn.execute(sql, (value, parent_id)).lastrowid or 0

    return op


def _insert_many(conn: sqlite3.Connection, payloads: list[Sequence[str | None]]) -> list[int]:
    """A batched kind: a run's payloads share one statement; each caller gets its row count."""
    conn.executemany("INSERT INTO rows (v) VALUES (?)", [(v,) for p in payloads for v in p])
    return [len(p) for p in payloads]


_MANY: Batched[Sequence[str | None], int] = Batched(_insert_many)


def _stored(path: Path) -> list[str]:
    """The committed rows, as another process would see them."""
    with sqlite3.connect(path) as conn:
        return [str(v) for (v,) in conn.execute("SELECT v FROM rows ORDER BY id")]


@pytest.fixture
def commits() -> list[int]:
    return []


@pytest.fixture
async def writer(tmp_path: Path, commits: list[int]) -> AsyncIterator[GroupCommitWriter]:
    box = _writer(tmp_path / "w.db", on_commit=commits.append)
    await box.start()
    yield box
    await box.close()


async def test_every_caller_of_a_batch_resolves_after_its_one_commit(
    writer: GroupCommitWriter, commits: list[int], tmp_path: Path
) -> None:
    futures = [writer.submit(_insert(f"v{i}")) for i in range(50)]
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    # The first caller to hear back finds every row of its batch on disk already.
    assert len(_stored(tmp_path / "w.db")) == 50
    assert sorted(await asyncio.gather(*futures)) == list(range(1, 51))
    assert commits == [50]


async def test_a_read_only_op_commits_nothing(
    writer: GroupCommitWriter, commits: list[int]
) -> None:
    assert await writer.submit(lambda c: c.execute("SELECT 1").fetchone(), writes=0) == (1,)
    assert commits == []


async def test_a_failing_op_fails_alone_and_its_batch_neighbours_are_kept(
    writer: GroupCommitWriter, commits: list[int], tmp_path: Path
) -> None:
    results = await asyncio.gather(
        *(writer.submit(_insert(f"op{i}")) for i in range(5)),
        writer.submit(_insert(None)),  # NOT NULL
        writer.submit_batched(_MANY, ["b0", "b1"], 2),
        writer.submit_batched(_MANY, ["b2", None], 2),  # fails its run: retried alone
        return_exceptions=True,
    )
    assert results[:5] == [1, 2, 3, 4, 5]
    assert isinstance(results[5], StoreError) and "NOT NULL" in str(results[5])
    assert results[6] == 2
    assert isinstance(results[7], StoreError)
    assert _stored(tmp_path / "w.db") == ["op0", "op1", "op2", "op3", "op4", "b0", "b1"]
    assert sum(commits) == 7  # the batch rolled back; each survivor committed on its own


async def test_a_failing_commit_fails_every_caller_of_the_batch(
    writer: GroupCommitWriter, tmp_path: Path
) -> None:
    # A deferred foreign key passes the INSERT and fails at COMMIT.
    results = await asyncio.gather(
        *(writer.submit(_insert(f"v{i}")) for i in range(5)),
        writer.submit(_insert("orphan", parent_id=99)),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results)
    assert "FOREIGN KEY" in str(results[0])
    assert _stored(tmp_path / "w.db") == []
    assert await writer.submit(_insert("after")) == 1  # the writer goes on


async def test_ops_run_in_order_with_first_kinds_leading_and_kind_runs_sharing_a_call(
    writer: GroupCommitWriter,
) -> None:
    calls: list[object] = []

    def record(label: str) -> Callable[[sqlite3.Connection, list[str]], list[None]]:
        def run(conn: sqlite3.Connection, payloads: list[str]) -> list[None]:
            calls.append((label, payloads))
            return [None] * len(payloads)

        return run

    def op(name: str) -> Callable[[sqlite3.Connection], None]:
        return lambda conn: calls.append(name)

    lead, kind, other = (
        Batched(record("lead"), first=True),
        Batched(record("k")),
        Batched(record("o")),
    )
    await asyncio.gather(
        writer.submit(op("a")),
        writer.submit_batched(kind, "k1", 1),
        writer.submit_batched(lead, "l1", 1),
        writer.submit_batched(kind, "k2", 1),
        writer.submit_batched(other, "o1", 1),
        writer.submit_batched(kind, "k3", 1),
        writer.submit(op("b")),
        writer.submit_batched(kind, "k4", 1),
        writer.submit_batched(lead, "l2", 1),
    )
    assert calls == [
        ("lead", ["l1", "l2"]),
        "a",
        ("k", ["k1", "k2"]),  # the first-kind request between them does not break the run
        ("o", ["o1"]),
        ("k", ["k3"]),
        "b",
        ("k", ["k4"]),
    ]


async def test_close_finishes_queued_ops_and_then_refuses_work(
    writer: GroupCommitWriter, tmp_path: Path
) -> None:
    queued = [writer.submit(_insert(f"v{i}")) for i in range(3)]
    await writer.close()
    assert [await f for f in queued] == [1, 2, 3]
    assert _stored(tmp_path / "w.db") == ["v0", "v1", "v2"]
    await writer.close()  # idempotent
    with pytest.raises(StoreError, match="test is not open"):
        await writer.submit(_insert("late"))
    with pytest.raises(StoreError, match="test is not open"):
        await writer.submit_batched(_MANY, ["late"], 1)
    with pytest.raises(StoreError, match="test is not open"):
        await writer.read(lambda c: c.execute("SELECT 1").fetchone())


async def test_reads_see_committed_writes_and_report_sql_errors_as_the_error_type(
    writer: GroupCommitWriter,
) -> None:
    await writer.submit(_insert("x"))
    assert await writer.read(lambda c: c.execute("SELECT v FROM rows").fetchall()) == [("x",)]
    with pytest.raises(StoreError, match="OperationalError"):
        await writer.read(lambda c: c.execute("SELECT nope FROM rows").fetchall())


async def test_a_failing_commit_hook_does_not_stop_the_writer(tmp_path: Path) -> None:
    def hook(n: int) -> None:
        raise ValueError("metrics broke")

    box = _writer(tmp_path / "w.db", on_commit=hook)
    await box.start()
    try:
        assert await box.submit(_insert("a")) == 1
        assert await box.submit(_insert("b")) == 2
    finally:
        await box.close()


async def test_a_writer_that_cannot_connect_fails_to_start_with_the_error_type(
    tmp_path: Path,
) -> None:
    connect = _connector(tmp_path)  # a directory is no database
    box = GroupCommitWriter(connect, connect, error=StoreError, name="test")
    with pytest.raises(StoreError, match="cannot open test"):
        await box.start()
    assert not box.running
