"""The durable inbox on SQLite (WAL): its schema and SQL.

Writes go through a ``GroupCommitWriter`` (``bot.sqlite_writer``): concurrent webhook
requests share one transaction and one fsync, and an ``enqueue`` that returned is on disk and
survives ``kill -9``. Reads run on the writer's read connection.

Neighbouring ``commit_handled`` writes of one group commit share one ``UPDATE`` and one
multi-row ``INSERT`` into the reply outbox; the handlers' conversation state lives in the
same file (table ``conversation_state``) and is written in that same transaction.

>>> inbox = SqliteInbox("var/inbox.db", synchronous="FULL", on_commit=print)  # doctest: +SKIP
>>> await inbox.open(); stored = await inbox.enqueue([record])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.inbox import (
    DeadLetter,
    DeadLetterKind,
    InboxError,
    InboxRecord,
    InboxStats,
    NewReply,
    Replayed,
    ReplyState,
    ReplyUpdate,
    StoredEvent,
    StoredReply,
)
from bot.sqlite_writer import WRITER_SWITCH_INTERVAL, Batched, GroupCommitWriter
from bot.state import StateUpdate, encode_state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id       TEXT    NOT NULL,
    sender_key    TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    timestamp_ms  INTEGER NOT NULL,
    dedup_key     TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    traceparent   TEXT,
    received_at   REAL    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',  -- pending | done | dead
    attempts      INTEGER NOT NULL DEFAULT 0,
    replies_sent  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    done_at       REAL,
    replayed      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS replies (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    page_id       TEXT    NOT NULL,
    psid          TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending',  -- bot.inbox.ReplyState
    created_at    REAL    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    replayed      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (event_id, n)
);
CREATE INDEX IF NOT EXISTS replies_state ON replies (state, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedup_key ON events (dedup_key);
CREATE INDEX IF NOT EXISTS events_status ON events (status, id);
CREATE INDEX IF NOT EXISTS events_done_at ON events (done_at) WHERE status = 'done';
CREATE TABLE IF NOT EXISTS windows (
    page_id       TEXT    NOT NULL,
    psid          TEXT    NOT NULL,
    opened_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (page_id, psid)
) WITHOUT ROWID;
-- forget_windows finds the old ones without a scan (a user is written at most once a minute).
CREATE INDEX IF NOT EXISTS windows_opened_at ON windows (opened_at_ms);
CREATE TABLE IF NOT EXISTS conversation_state (
    page_id       TEXT    NOT NULL,
    psid          TEXT    NOT NULL,
    data          TEXT    NOT NULL,  -- a JSON object (bot.state)
    updated_at    REAL    NOT NULL,
    PRIMARY KEY (page_id, psid)
) WITHOUT ROWID;
PRAGMA user_version = 3;
"""

_COLUMNS = (
    "id, page_id, sender_key, kind, timestamp_ms, dedup_key, payload, traceparent,"
    " received_at, attempts, last_error"
)
_REPLY_COLUMNS = "id, event_id, n, page_id, psid, body, state, created_at, attempts, last_error"
_UNSETTLED = "state IN ('pending', 'sending', 'uncertain')"
_INSERT_REPLIES = (
    "INSERT INTO replies (event_id, n, page_id, psid, body, state, created_at) VALUES "
)
_REPLY_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?)"
_UPDATE_REPLY = "UPDATE replies SET state = ?, attempts = ?, last_error = ? WHERE id = ?"
_INSERT = (
    "INSERT OR IGNORE INTO events (page_id, sender_key, kind, timestamp_ms, dedup_key, payload,"
    " traceparent, received_at) VALUES "
)
_ROW_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?, ?)"
# One constant statement for any number of ids (a JSON array), so SQLite's statement cache hits.
# It returns the events it moved: the others were done already (a retried commit).
_MARK_DONE = (
    "UPDATE events SET status = 'done', done_at = ?, replayed = 0"
    " WHERE id IN (SELECT value FROM json_each(?)) AND status != 'done' RETURNING id"
)
_UPSERT_STATE = (
    "INSERT INTO conversation_state (page_id, psid, data, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (page_id, psid)"
    " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at"
)
_DELETE_STATE = "DELETE FROM conversation_state WHERE page_id = ? AND psid = ?"
# 7 parameters a reply row.
_REPLY_CHUNK = 1000
_UPSERT_WINDOW = (
    "INSERT INTO windows (page_id, psid, opened_at_ms) VALUES (?, ?, ?)"
    " ON CONFLICT (page_id, psid)"
    " DO UPDATE SET opened_at_ms = MAX(opened_at_ms, excluded.opened_at_ms)"
)
_FORGET_WINDOWS = (
    "DELETE FROM windows WHERE (page_id, psid) IN (SELECT page_id, psid FROM windows"
    " WHERE opened_at_ms < ? ORDER BY opened_at_ms LIMIT ?)"
)
# 8 parameters a row; SQLite allows 32766 per statement.
_INSERT_CHUNK = 500
_SYNCHRONOUS = frozenset({"FULL", "NORMAL", "EXTRA"})
_PURGE_CHUNK = 5000
_BUSY_TIMEOUT_SECONDS = 5.0
# (page id, psid, the state as JSON text or None to delete it)
_StateRow = tuple[str, str, str | None]


@dataclass(slots=True)
class _Handled:
    """One ``commit_handled``: neighbouring ones of a group commit share their statements."""

    event_id: int
    replies: list[NewReply]
    done_at: float
    state: _StateRow | None  # the conversation's new state


class SqliteInbox:
    """``bot.inbox.Inbox`` on one SQLite file; ``on_commit(n)`` sees each commit's write count.

    ``n`` counts the records of an ``enqueue`` one each and every other write request once;
    it is called from the writer thread (``Histogram.observe`` is thread-safe).
    ``open()`` lowers the process's GIL switch interval to ``switch_interval`` (see
    ``WRITER_SWITCH_INTERVAL``); pass ``None`` to leave it alone.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        on_commit: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        switch_interval: float | None = WRITER_SWITCH_INTERVAL,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._clock = clock
        self._writer = GroupCommitWriter(
            self._open_file,
            self._connect,
            error=InboxError,
            name="inbox",
            on_commit=on_commit,
            switch_interval=switch_interval,
        )
        # Conversations that have state. State is only written through this object, so a
        # handler of a conversation without state (most events of most bots) loads {} with no
        # read at all: a per-event thread hop and query otherwise.
        self._stateful: set[tuple[str, str]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file, its directory and schema, start the writer; idempotent."""
        if self._writer.running:
            return
        await self._writer.start()
        keys = await self._writer.read(
            lambda conn: conn.execute("SELECT page_id, psid FROM conversation_state").fetchall()
        )
        self._stateful = {(str(page), str(psid)) for page, psid in keys}

    async def close(self) -> None:
        """Finish queued writes, then stop the writer and close both connections."""
        await self._writer.close()

    # --- Inbox protocol: writes ------------------------------------------------------------

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        if not records:
            return []
        return await self._writer.submit_batched(_ENQUEUE, list(records), len(records))

    async def pending(self) -> list[StoredEvent]:
        """Pending events, oldest first; clears the replayed flags so an engine starting from
        this list does not get the same events again from ``take_replayed``."""

        def op(conn: sqlite3.Connection) -> list[StoredEvent]:
            conn.execute("UPDATE events SET replayed = 0 WHERE replayed = 1")
            return _events(conn, "WHERE status = 'pending' ORDER BY id")

        return await self._writer.submit(op)

    async def unsettled_replies(self) -> list[StoredReply]:
        def op(conn: sqlite3.Connection) -> list[StoredReply]:
            conn.execute("UPDATE replies SET replayed = 0 WHERE replayed = 1")
            return _replies(conn, f"WHERE {_UNSETTLED} ORDER BY id")

        return await self._writer.submit(op)

    async def take_replayed(self) -> Replayed:
        def op(conn: sqlite3.Connection) -> Replayed:
            events = _events(conn, "WHERE replayed = 1 AND status = 'pending' ORDER BY id")
            replies = _replies(conn, "WHERE replayed = 1 AND state = 'pending' ORDER BY id")
            if events:
                conn.execute("UPDATE events SET replayed = 0 WHERE replayed = 1")
            if replies:
                conn.execute("UPDATE replies SET replayed = 0 WHERE replayed = 1")
            return Replayed(events, replies)

        return await self._writer.submit(op)

    async def commit_handled(
        self, event_id: int, replies: Sequence[NewReply], state: StateUpdate | None = None
    ) -> list[StoredReply]:
        handled = _Handled(
            event_id,
            list(replies),
            self._clock(),
            None if state is None else _state_row(state),  # StateError before queueing
        )
        writes = 1 + len(replies) + (state is not None)
        result = await self._writer.submit_batched(_COMMIT_HANDLED, handled, writes)
        if state is not None:
            self._note_state(state)
        return result

    async def record_failure(self, event_id: int, attempts: int, error: str) -> None:
        await self._exec(
            "UPDATE events SET attempts = ?, last_error = ? WHERE id = ?",
            (attempts, error, event_id),
        )

    async def dead_letter(self, event_id: int, error: str) -> None:
        now = self._clock()
        await self._exec(
            "UPDATE events SET status = 'dead', last_error = ?, done_at = ?, replayed = 0"
            " WHERE id = ?",
            (error, now, event_id),
        )

    async def update_replies(self, updates: Sequence[ReplyUpdate]) -> None:
        if not updates:
            return
        await self._writer.submit_batched(_UPDATE_REPLIES, list(updates), len(updates))

    async def replay(
        self, event_ids: Sequence[int] | None = None, reply_ids: Sequence[int] | None = None
    ) -> int:
        # A replayed event gets a fresh set of attempts; a replayed reply a fresh deadline.
        events_sql = (
            "UPDATE events SET status = 'pending', replayed = 1, attempts = 0, done_at = NULL"
            " WHERE status = 'dead'"
        )
        replies_sql = (
            "UPDATE replies SET state = 'pending', replayed = 1, attempts = 0, created_at = ?"
            " WHERE state = 'dead'"
        )
        everything = event_ids is None and reply_ids is None
        events = list(event_ids or ())
        replies = list(reply_ids or ())
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            if everything:
                count = conn.execute(events_sql).rowcount
                return count + conn.execute(replies_sql, (now,)).rowcount
            count = sum(conn.execute(events_sql + " AND id = ?", (i,)).rowcount for i in events)
            return count + sum(
                conn.execute(replies_sql + " AND id = ?", (now, i)).rowcount for i in replies
            )

        return await self._writer.submit(op)

    async def purge(self, done_before: float) -> int:
        # Small chunks keep each group commit short while a big backlog is forgotten. An event
        # stays while a reply of it is unsettled or a dead letter.
        def op(conn: sqlite3.Connection) -> int:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM events WHERE status = 'done' AND done_at < ? AND NOT EXISTS"
                    " (SELECT 1 FROM replies WHERE replies.event_id = events.id"
                    "  AND replies.state NOT IN ('sent', 'dropped')) LIMIT ?",
                    (done_before, _PURGE_CHUNK),
                )
            ]
            if ids:
                doomed = json.dumps(ids)
                conn.execute(
                    "DELETE FROM replies WHERE event_id IN (SELECT value FROM json_each(?))",
                    (doomed,),
                )
                conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))", (doomed,)
                )
            return len(ids)

        total = 0
        while True:
            removed: int = await self._writer.submit(op)
            total += removed
            if removed < _PURGE_CHUNK:
                return total

    async def forget_windows(self, opened_before_ms: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(_FORGET_WINDOWS, (opened_before_ms, _PURGE_CHUNK)).rowcount

        total = 0
        while True:  # chunks, as in purge: each group commit stays short
            removed: int = await self._writer.submit(op)
            total += removed
            if removed < _PURGE_CHUNK:
                return total

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        params = (page_id, psid, at_ms)
        await self._writer.submit(lambda conn: conn.execute(_UPSERT_WINDOW, params).rowcount)

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        """Replace a conversation's state outside a commit (``StateStore``)."""
        update = StateUpdate(page_id, psid, data)
        rows, now = [_state_row(update)], self._clock()
        await self._writer.submit(lambda conn: _write_states(conn, rows, now))
        self._note_state(update)

    def _note_state(self, update: StateUpdate) -> None:
        key = (update.page_id, update.psid)
        if update.data:
            self._stateful.add(key)
        else:
            self._stateful.discard(key)

    async def ping(self) -> None:
        """A round trip through the writer thread: proves it is alive and not wedged."""
        await self._writer.submit(lambda conn: conn.execute("SELECT 1").fetchone(), writes=0)

    # --- Inbox protocol: reads -------------------------------------------------------------

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        def query(conn: sqlite3.Connection) -> list[DeadLetter]:
            dead = [
                DeadLetter(DeadLetterKind.HANDLER_FAILED, e.id, e, e.last_error)
                for e in _events(conn, "WHERE status = 'dead' ORDER BY id LIMIT ?", (limit,))
            ]
            replies = _replies(conn, "WHERE state = 'dead' ORDER BY id LIMIT ?", (limit,))
            wanted = json.dumps(sorted({r.event_id for r in replies}))
            events = {
                e.id: e
                for e in _events(conn, "WHERE id IN (SELECT value FROM json_each(?))", (wanted,))
            }
            dead += [
                DeadLetter(
                    DeadLetterKind.REPLY_UNDELIVERABLE, r.id, events[r.event_id], r.last_error, r
                )
                for r in replies
                if r.event_id in events
            ]
            dead.sort(key=lambda d: (d.event.id, d.reply.n if d.reply else -1))
            return dead[:limit]

        return await self._writer.read(query)

    async def stats(self) -> InboxStats:
        def query(conn: sqlite3.Connection) -> InboxStats:
            pending, oldest = conn.execute(
                "SELECT COUNT(*), MIN(received_at) FROM events WHERE status = 'pending'"
            ).fetchone()
            (dead,) = conn.execute("SELECT COUNT(*) FROM events WHERE status = 'dead'").fetchone()
            (dead_replies,) = conn.execute(
                "SELECT COUNT(*) FROM replies WHERE state = 'dead'"
            ).fetchone()
            (unsettled,) = conn.execute(
                f"SELECT COUNT(*) FROM replies WHERE {_UNSETTLED}"
            ).fetchone()
            return InboxStats(
                pending=pending,
                oldest_pending_received_at=oldest,
                dead_letters=dead + dead_replies,
                unsettled_replies=unsettled,
            )

        return await self._writer.read(query)

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        """A conversation's state, ``{}`` when it has none (``StateStore``)."""
        if (page_id, psid) not in self._stateful:
            return {}

        def query(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT data FROM conversation_state WHERE page_id = ? AND psid = ?",
                (page_id, psid),
            ).fetchone()
            return None if row is None else str(row[0])

        data = await self._writer.read(query)
        return {} if data is None else dict(json.loads(data))

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        def query(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT opened_at_ms FROM windows WHERE page_id = ? AND psid = ?", (page_id, psid)
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._writer.read(query)

    async def _exec(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._writer.submit(lambda conn: conn.execute(sql, params).rowcount)

    # --- connections -----------------------------------------------------------------------

    def _open_file(self) -> sqlite3.Connection:
        """The writer's connection (in the writer thread): the directory, file and schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.executescript(_SCHEMA)
        return conn

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the writer issues BEGIN/COMMIT (one transaction per batch).
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_SECONDS, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn


def _enqueue(
    conn: sqlite3.Connection, enqueues: list[list[InboxRecord]]
) -> list[list[StoredEvent | None]]:
    """All of a group commit's enqueues share one ``INSERT`` per chunk (``_insert``)."""
    stored = iter(_insert(conn, [record for records in enqueues for record in records]))
    return [[next(stored) for _ in records] for records in enqueues]


def _update_replies(conn: sqlite3.Connection, updates: list[list[ReplyUpdate]]) -> list[None]:
    """Neighbouring ``update_replies`` share one statement."""
    params = [(u.state.value, u.attempts, u.error, u.reply_id) for run in updates for u in run]
    conn.executemany(_UPDATE_REPLY, params)
    return [None] * len(updates)


def _commit_handled(conn: sqlite3.Connection, commits: list[_Handled]) -> list[list[StoredReply]]:
    """Many ``commit_handled``s in few statements (each SQLite call costs the writer a GIL
    hand-off): one ``UPDATE`` for the events, one multi-row ``INSERT`` per chunk of replies,
    the conversations' new states. An event done already (a retried commit) writes nothing
    and gets the replies of its first commit back.

    The events share the latest ``done_at`` of the run: at most a commit interval later than
    each one's own, which only matters to ``purge`` (dedup retention) and errs towards keeping.
    """
    ids = json.dumps([c.event_id for c in commits])
    done_at = max(c.done_at for c in commits)
    fresh = {row[0] for row in conn.execute(_MARK_DONE, (done_at, ids)).fetchall()}
    if len(fresh) == len(commits):
        return _commit_fresh(conn, commits, done_at)
    stored = iter(_commit_fresh(conn, [c for c in commits if c.event_id in fresh], done_at))
    return [
        next(stored) if c.event_id in fresh else _committed_replies(conn, c.event_id)
        for c in commits
    ]


def _commit_fresh(
    conn: sqlite3.Connection, commits: list[_Handled], done_at: float
) -> list[list[StoredReply]]:
    """The replies and states of events this transaction marked done."""
    _write_states(conn, [c.state for c in commits if c.state is not None], done_at)
    rows = [(c.event_id, reply, c.done_at) for c in commits for reply in c.replies]
    stored: list[StoredReply] = []
    for start in range(0, len(rows), _REPLY_CHUNK):
        chunk = rows[start : start + _REPLY_CHUNK]
        params = [
            value
            for event_id, reply, at in chunk
            for value in (
                event_id,
                reply.n,
                reply.page_id,
                reply.psid,
                reply.body,
                reply.state.value,
                at,
            )
        ]
        cursor = conn.execute(
            _INSERT_REPLIES + ",".join([_REPLY_PLACEHOLDERS] * len(chunk)), params
        )
        # No OR IGNORE: every row went in, and AUTOINCREMENT numbered them consecutively.
        first = (cursor.lastrowid or 0) - len(chunk) + 1
        stored.extend(
            StoredReply(
                first + i,
                event_id,
                reply.n,
                reply.page_id,
                reply.psid,
                reply.body,
                reply.state,
                at,
            )
            for i, (event_id, reply, at) in enumerate(chunk)
        )
    results: list[list[StoredReply]] = []
    taken = 0
    for c in commits:
        results.append(stored[taken : taken + len(c.replies)])
        taken += len(c.replies)
    return results


def _committed_replies(conn: sqlite3.Connection, event_id: int) -> list[StoredReply]:
    return _replies(conn, "WHERE event_id = ? ORDER BY id", (event_id,))


def _state_row(update: StateUpdate) -> _StateRow:
    encoded = encode_state(update.data) if update.data else None
    return (update.page_id, update.psid, encoded)


def _write_states(conn: sqlite3.Connection, rows: list[_StateRow], now: float) -> None:
    """Conversations' new states; the last one for a conversation wins, empty ones delete."""
    if not rows:
        return
    final = {(page, psid): data for page, psid, data in rows}
    upserts = [(p, u, d, now) for (p, u), d in final.items() if d is not None]
    deletes = [(p, u) for (p, u), d in final.items() if d is None]
    if upserts:
        conn.executemany(_UPSERT_STATE, upserts)
    if deletes:
        conn.executemany(_DELETE_STATE, deletes)


def _insert(conn: sqlite3.Connection, records: list[InboxRecord]) -> list[StoredEvent | None]:
    """Insert ``records`` with one multi-row statement per chunk; ``None`` marks a duplicate.

    Every SQLite call makes the writer give up the GIL and wait to get it back, so a batch
    costs a few statements instead of one per record. Inside the transaction (BEGIN
    IMMEDIATE: no other writer) the new rows are exactly those above the AUTOINCREMENT
    counter read first; only when some rows were ignored are they looked up by key.
    """
    stored: list[StoredEvent | None] = []
    for start in range(0, len(records), _INSERT_CHUNK):
        chunk = records[start : start + _INSERT_CHUNK]
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        floor = row[0] if row else 0
        params = [value for r in chunk for value in _record_values(r)]
        cursor = conn.execute(_INSERT + ",".join([_ROW_PLACEHOLDERS] * len(chunk)), params)
        ids: list[int | None]
        if cursor.rowcount == len(chunk) and cursor.lastrowid == floor + len(chunk):
            ids = list(range(floor + 1, floor + len(chunk) + 1))
        else:
            query = "SELECT dedup_key, id FROM events WHERE id > ?"
            new = dict(conn.execute(query, (floor,)).fetchall())
            # The first record with a key got the row; a repeat inside the chunk is a duplicate.
            ids = [new.pop(r.dedup_key, None) for r in chunk]
        stored.extend(None if i is None else _stored(r, i) for r, i in zip(chunk, ids, strict=True))
    return stored


def _record_values(r: InboxRecord) -> tuple[Any, ...]:
    return (
        r.page_id,
        r.sender_key,
        r.kind,
        r.timestamp_ms,
        r.dedup_key,
        r.payload,
        r.traceparent,
        r.received_at,
    )


def _stored(r: InboxRecord, event_id: int) -> StoredEvent:
    return StoredEvent(
        id=event_id,
        page_id=r.page_id,
        sender_key=r.sender_key,
        kind=r.kind,
        timestamp_ms=r.timestamp_ms,
        dedup_key=r.dedup_key,
        payload=r.payload,
        traceparent=r.traceparent,
        received_at=r.received_at,
    )


def _events(
    conn: sqlite3.Connection, where: str, params: tuple[Any, ...] = ()
) -> list[StoredEvent]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM events {where}", params).fetchall()
    return [StoredEvent(*row) for row in rows]


def _replies(
    conn: sqlite3.Connection, where: str, params: tuple[Any, ...] = ()
) -> list[StoredReply]:
    rows = conn.execute(f"SELECT {_REPLY_COLUMNS} FROM replies {where}", params).fetchall()
    return [
        StoredReply(i, e, n, p, u, b, ReplyState(s), c, a, err)
        for i, e, n, p, u, b, s, c, a, err in rows
    ]


# Enqueues run first in a group commit, all in one call, so they share their INSERTs.
_ENQUEUE = Batched(_enqueue, first=True)
_COMMIT_HANDLED = Batched(_commit_handled)
_UPDATE_REPLIES = Batched(_update_replies)
