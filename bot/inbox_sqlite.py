"""The durable inbox on SQLite (WAL), with group commit.

One writer thread owns the write connection. Every write request goes on a queue; the writer
takes whatever has queued up while the previous commit was running and applies it all in ONE
transaction, so concurrent webhook requests share a single fsync. Each caller awaits an
asyncio future that the writer resolves (via ``call_soon_threadsafe``) only after COMMIT
returned: an ``enqueue`` that returned is on disk and survives ``kill -9``.

Reads run on a second connection in their own thread; WAL lets them proceed during commits.

Neighbouring ``commit_handled`` writes of one group commit share one ``UPDATE`` and one
multi-row ``INSERT`` into the reply outbox; the handlers' conversation state lives in the
same file (table ``conversation_state``) and is written in that same transaction.

>>> inbox = SqliteInbox("var/inbox.db", synchronous="FULL", on_commit=print)  # doctest: +SKIP
>>> await inbox.open(); stored = await inbox.enqueue([record])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
from bot.state import StateUpdate, encode_state

T = TypeVar("T")
_log = logging.getLogger(__name__)
_Op = Callable[[sqlite3.Connection], Any]

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
# 8 parameters a row; SQLite allows 32766 per statement.
_INSERT_CHUNK = 500
_SYNCHRONOUS = frozenset({"FULL", "NORMAL", "EXTRA"})
# Bound one transaction so a burst cannot make the first caller of a batch wait for thousands.
_MAX_BATCH_OPS = 1000
_PURGE_CHUNK = 5000
_BUSY_TIMEOUT_SECONDS = 5.0
# The writer needs the GIL back after every SQLite call. With CPython's default 5 ms switch
# interval a busy event loop makes each hand-off wait up to 5 ms, which capped the inbox at a
# few hundred statements/s in the ack benchmark; 0.2 ms lifts that cap for little overhead.
WRITER_SWITCH_INTERVAL = 0.0002


@dataclass(slots=True)
class _Request:
    # Exactly one of: ``op`` (a statement), ``records`` (an enqueue: all of a batch's share
    # one INSERT), ``handled`` (a commit_handled) or ``updates`` (an update_replies):
    # neighbouring requests of the last two kinds share their statements.
    op: _Op | None
    records: list[InboxRecord] | None
    writes: int  # rows this request writes (0: read-only, needs no transaction)
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    handled: tuple[int, list[NewReply]] | None = None
    done_at: float = 0.0
    updates: list[ReplyUpdate] | None = None  # an update_replies: neighbouring ones share one
    state: _StateRow | None = None  # a commit_handled's new conversation state


_STOP = object()
# (page id, psid, the state as JSON text or None to delete it)
_StateRow = tuple[str, str, str | None]


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
        self._on_commit = on_commit
        self._clock = clock
        self._switch_interval = switch_interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders "is it open?" against the stop sentinel
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._accepting = False
        self._outbox: list[_Request] = []  # requests of this loop iteration, not yet queued
        self._flush_scheduled = False
        # Conversations that have state. State is only written through this object, so a
        # handler of a conversation without state (most events of most bots) loads {} with no
        # read at all: a per-event thread hop and query otherwise.
        self._stateful: set[tuple[str, str]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file, its directory and schema, start the writer; idempotent."""
        if self._writer is not None:
            return
        ready: Future[None] = Future()
        writer = threading.Thread(
            target=self._run_writer, args=(ready,), name="inbox-writer", daemon=True
        )
        writer.start()
        try:
            await asyncio.wrap_future(ready)
        except Exception as exc:
            writer.join()
            raise InboxError(f"cannot open inbox: {type(exc).__name__}: {exc}") from exc
        self._writer = writer
        if self._switch_interval is not None and sys.getswitchinterval() > self._switch_interval:
            sys.setswitchinterval(self._switch_interval)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-read")
        with self._lock:
            self._accepting = True
        keys = await self._read(
            lambda conn: conn.execute("SELECT page_id, psid FROM conversation_state").fetchall()
        )
        self._stateful = {(str(page), str(psid)) for page, psid in keys}

    async def close(self) -> None:
        """Finish queued writes, then stop the writer and close both connections."""
        self._flush()  # requests made just before close still get written
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
            self._queue.put(_STOP)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._close_reader)
            self._reader.shutdown(wait=True)
            self._reader = None

    # --- Inbox protocol: writes ------------------------------------------------------------

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        if not records:
            return []
        result: list[StoredEvent | None] = await self._submit(None, list(records), len(records))
        return result

    async def pending(self) -> list[StoredEvent]:
        """Pending events, oldest first; clears the replayed flags so an engine starting from
        this list does not get the same events again from ``take_replayed``."""

        def op(conn: sqlite3.Connection) -> list[StoredEvent]:
            conn.execute("UPDATE events SET replayed = 0 WHERE replayed = 1")
            return _events(conn, "WHERE status = 'pending' ORDER BY id")

        result: list[StoredEvent] = await self._write(op)
        return result

    async def unsettled_replies(self) -> list[StoredReply]:
        def op(conn: sqlite3.Connection) -> list[StoredReply]:
            conn.execute("UPDATE replies SET replayed = 0 WHERE replayed = 1")
            return _replies(conn, f"WHERE {_UNSETTLED} ORDER BY id")

        result: list[StoredReply] = await self._write(op)
        return result

    async def take_replayed(self) -> Replayed:
        def op(conn: sqlite3.Connection) -> Replayed:
            events = _events(conn, "WHERE replayed = 1 AND status = 'pending' ORDER BY id")
            replies = _replies(conn, "WHERE replayed = 1 AND state = 'pending' ORDER BY id")
            if events:
                conn.execute("UPDATE events SET replayed = 0 WHERE replayed = 1")
            if replies:
                conn.execute("UPDATE replies SET replayed = 0 WHERE replayed = 1")
            return Replayed(events, replies)

        result: Replayed = await self._write(op)
        return result

    async def commit_handled(
        self, event_id: int, replies: Sequence[NewReply], state: StateUpdate | None = None
    ) -> list[StoredReply]:
        loop = asyncio.get_running_loop()
        request = _Request(
            None,
            None,
            1 + len(replies) + (state is not None),
            loop.create_future(),
            loop,
            (event_id, list(replies)),
            self._clock(),
            state=None if state is None else _state_row(state),  # StateError before queueing
        )
        result: list[StoredReply] = await self._queue_request(request)
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
        loop = asyncio.get_running_loop()
        request = _Request(None, None, len(updates), loop.create_future(), loop)
        request.updates = list(updates)
        await self._queue_request(request)

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

        result: int = await self._write(op)
        return result

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
            removed: int = await self._write(op)
            total += removed
            if removed < _PURGE_CHUNK:
                return total

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        params = (page_id, psid, at_ms)
        await self._write(lambda conn: conn.execute(_UPSERT_WINDOW, params).rowcount)

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        """Replace a conversation's state outside a commit (``StateStore``)."""
        update = StateUpdate(page_id, psid, data)
        rows, now = [_state_row(update)], self._clock()
        await self._write(lambda conn: _write_states(conn, rows, now))
        self._note_state(update)

    def _note_state(self, update: StateUpdate) -> None:
        key = (update.page_id, update.psid)
        if update.data:
            self._stateful.add(key)
        else:
            self._stateful.discard(key)

    async def ping(self) -> None:
        """A round trip through the writer thread: proves it is alive and not wedged."""
        await self._write(lambda conn: conn.execute("SELECT 1").fetchone(), writes=0)

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

        return await self._read(query)

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

        return await self._read(query)

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

        data = await self._read(query)
        return {} if data is None else dict(json.loads(data))

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        def query(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT opened_at_ms FROM windows WHERE page_id = ? AND psid = ?", (page_id, psid)
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._read(query)

    # --- the writer thread -----------------------------------------------------------------

    async def _exec(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._write(lambda conn: conn.execute(sql, params).rowcount)

    async def _write(self, op: _Op, *, writes: int = 1) -> Any:
        return await self._submit(op, None, writes)

    async def _submit(self, op: _Op | None, records: list[InboxRecord] | None, writes: int) -> Any:
        loop = asyncio.get_running_loop()
        return await self._queue_request(_Request(op, records, writes, loop.create_future(), loop))

    def _queue_request(self, request: _Request) -> asyncio.Future[Any]:
        # Requests made during one event-loop iteration travel to the writer as one item:
        # one wake-up, one transaction, however many webhook requests are in flight.
        if not self._accepting:
            raise InboxError("inbox is not open")
        self._outbox.append(request)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            request.loop.call_soon(self._flush)
        return request.future

    def _flush(self) -> None:
        self._flush_scheduled = False
        requests, self._outbox = self._outbox, []
        if not requests:
            return
        with self._lock:
            if self._accepting:
                self._queue.put(requests)
                return
        error = InboxError("inbox is not open")
        _resolve([(request, False, error) for request in requests])

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per batch).
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_SECONDS, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _run_writer(self, ready: Future[None]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            conn.executescript(_SCHEMA)
        except Exception as exc:  # reported to open() through the future
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                if item is _STOP:
                    break
                batch: list[_Request] = list(item)
                while len(batch) < _MAX_BATCH_OPS:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.extend(item)
                self._apply(conn, batch)
        finally:
            conn.close()

    def _apply(self, conn: sqlite3.Connection, batch: list[_Request]) -> None:
        """Run ``batch`` in one transaction. If one op fails, the others are retried one by
        one so a bad request cannot fail its neighbours; if BEGIN or COMMIT fails, all fail."""
        writes = sum(r.writes for r in batch)
        results: list[tuple[_Request, bool, Any]] = []
        op_failed = False
        try:
            if writes:
                conn.execute("BEGIN IMMEDIATE")
            op_failed = True
            enqueues = [r for r in batch if r.records is not None]
            if enqueues:
                stored = iter(_insert(conn, [rec for r in enqueues for rec in r.records or ()]))
                for request in enqueues:
                    results.append((request, True, [next(stored) for _ in request.records or ()]))
            # Runs of commit_handled (or of reply updates) share their statements; other ops
            # keep their place in the order.
            run: list[_Request] = []
            for request in batch:
                if request.records is not None:
                    continue
                if run and (request.op is not None or _run_kind(request) != _run_kind(run[0])):
                    results.extend(_apply_run(conn, run))
                    run = []
                if request.op is not None:
                    results.append((request, True, request.op(conn)))
                else:
                    run.append(request)
            if run:
                results.extend(_apply_run(conn, run))
            op_failed = False
            if writes:
                conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.rollback()
            if op_failed and len(batch) > 1:
                for request in batch:
                    self._apply(conn, [request])
                return
            error = InboxError(f"{type(exc).__name__}: {exc}")
            results = [(request, False, error) for request in batch]
        else:
            if writes and self._on_commit is not None:
                try:
                    self._on_commit(writes)
                except Exception:  # a metrics hook must never stop the writer thread
                    _log.exception("inbox on_commit hook failed")
        _resolve(results)

    # --- the reader thread -----------------------------------------------------------------

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None or not self._accepting:
            raise InboxError("inbox is not open")

        def run() -> T:
            if self._read_conn is None:
                self._read_conn = self._connect()
            return query(self._read_conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, run)
        except sqlite3.Error as exc:
            raise InboxError(f"{type(exc).__name__}: {exc}") from exc

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None


def _run_kind(request: _Request) -> bool:
    return request.handled is not None


def _apply_run(
    conn: sqlite3.Connection, requests: list[_Request]
) -> list[tuple[_Request, bool, Any]]:
    if _run_kind(requests[0]):
        return _commit_handled(conn, requests)
    params = [
        (u.state.value, u.attempts, u.error, u.reply_id)
        for request in requests
        for u in request.updates or ()
    ]
    conn.executemany(_UPDATE_REPLY, params)
    return [(request, True, None) for request in requests]


def _commit_handled(
    conn: sqlite3.Connection, requests: list[_Request]
) -> list[tuple[_Request, bool, Any]]:
    """Many ``commit_handled``s in few statements (each SQLite call costs the writer a GIL
    hand-off): one ``UPDATE`` for the events, one multi-row ``INSERT`` per chunk of replies,
    the conversations' new states. An event done already (a retried commit) writes nothing
    and gets the replies of its first commit back.

    The events share the latest ``done_at`` of the run: at most a commit interval later than
    each one's own, which only matters to ``purge`` (dedup retention) and errs towards keeping.
    """
    ids = json.dumps([r.handled[0] for r in requests if r.handled is not None])
    done_at = max(r.done_at for r in requests)
    fresh = {row[0] for row in conn.execute(_MARK_DONE, (done_at, ids)).fetchall()}
    if len(fresh) == len(requests):
        return _commit_fresh(conn, requests, done_at)
    first: list[_Request] = []
    retries: list[_Request] = []
    for request in requests:
        assert request.handled is not None
        (first if request.handled[0] in fresh else retries).append(request)
    results = _commit_fresh(conn, first, done_at)
    for request in retries:
        assert request.handled is not None
        results.append((request, True, _committed_replies(conn, request.handled[0])))
    return results


def _commit_fresh(
    conn: sqlite3.Connection, requests: list[_Request], done_at: float
) -> list[tuple[_Request, bool, Any]]:
    """The replies and states of events this transaction marked done."""
    _write_states(conn, [r.state for r in requests if r.state is not None], done_at)
    rows = [
        (event_id, reply, request.done_at)
        for request in requests
        if request.handled is not None
        for event_id, replies in (request.handled,)
        for reply in replies
    ]
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
    results: list[tuple[_Request, bool, Any]] = []
    taken = 0
    for request in requests:
        count = len(request.handled[1]) if request.handled is not None else 0
        results.append((request, True, stored[taken : taken + count]))
        taken += count
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


def _resolve(results: list[tuple[_Request, bool, Any]]) -> None:
    """Hand results back to each caller's loop with one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for request, ok, value in results:
        by_loop.setdefault(request.loop, []).append((request.future, ok, value))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass


def _settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
