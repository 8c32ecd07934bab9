"""Group commit on SQLite: one writer thread runs callers' ops, one transaction per batch.

Every fsync is shared by every op that queued up while the previous COMMIT ran, so many
concurrent acks cost one disk flush. What a caller can rely on:

- **Durable before resolved**: the future of a write resolves (via ``call_soon_threadsafe``)
  only after its batch's COMMIT returned.
- **Failure isolation**: when one op of a batch fails, the batch is rolled back and every op
  is retried alone, so a bad op fails only its own caller. A failing BEGIN or COMMIT fails
  every caller of the batch.
- **Ordering**: ops run in the order they were submitted, except that the requests of a
  ``Batched(first=True)`` kind all run first, in one call. Neighbouring requests of one
  ``Batched`` kind share one call (and so their statements).
- ``close()`` lets everything submitted before it finish; later submissions fail.

Reads run on a second connection in their own thread; WAL lets them proceed during commits.

>>> writer = GroupCommitWriter(connect, connect, error=InboxError)  # doctest: +SKIP
>>> await writer.start()  # doctest: +SKIP
>>> rows = await writer.submit(lambda conn: conn.execute(sql).rowcount)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")
_log = logging.getLogger(__name__)
Connect = Callable[[], sqlite3.Connection]

# Bound one transaction so a burst cannot make the first caller of a batch wait for thousands.
_MAX_BATCH_OPS = 1000
# The writer needs the GIL back after every SQLite call. With CPython's default 5 ms switch
# interval a busy event loop makes each hand-off wait up to 5 ms, which capped the inbox at a
# few hundred statements/s in the ack benchmark; 0.2 ms lifts that cap for little overhead.
WRITER_SWITCH_INTERVAL = 0.0002


@dataclass(frozen=True, slots=True, eq=False)
class Batched(Generic[P, R]):
    """A kind of request whose neighbours share statements (each SQLite call costs the writer a
    GIL hand-off): ``run(conn, payloads)`` returns one result per payload, in order.

    ``first``: the kind's requests of a batch all run before any other op, in one call.
    """

    run: Callable[[sqlite3.Connection, list[P]], list[R]]
    first: bool = False


@dataclass(slots=True)
class _Request:
    # Exactly one of ``op`` (runs alone) and ``kind`` (runs with its neighbours' payloads).
    op: Callable[[sqlite3.Connection], Any] | None
    kind: Batched[Any, Any] | None
    payload: Any
    writes: int  # rows this request writes (0: read-only, needs no transaction)
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Result = tuple[_Request, bool, Any]
_STOP = object()


class GroupCommitWriter:
    """Runs ops on one SQLite connection in a writer thread, batched into one transaction per
    batch; each caller awaits its own result.

    ``connect_writer`` opens the writer's connection in the writer thread (and may create the
    schema); ``connect_reader`` the read connection. Both must be in autocommit mode
    (``isolation_level=None``): the writer issues BEGIN IMMEDIATE and COMMIT itself.
    Failures reach callers as ``error(reason)``; ``name`` appears in thread names and errors.
    ``on_commit(n)`` sees each commit's write count, from the writer thread. ``start()``
    lowers the process's GIL switch interval to ``switch_interval`` (see
    ``WRITER_SWITCH_INTERVAL``); ``None`` leaves it alone.
    """

    def __init__(
        self,
        connect_writer: Connect,
        connect_reader: Connect,
        *,
        error: Callable[[str], Exception],
        name: str = "sqlite",
        on_commit: Callable[[int], None] | None = None,
        switch_interval: float | None = WRITER_SWITCH_INTERVAL,
    ) -> None:
        self._connect_writer = connect_writer
        self._connect_reader = connect_reader
        self._error = error
        self._name = name
        self._on_commit = on_commit
        self._switch_interval = switch_interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders "is it open?" against the stop sentinel
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._accepting = False
        self._outbox: list[_Request] = []  # requests of this loop iteration, not yet queued
        self._flush_scheduled = False

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started and not closed since."""
        return self._writer is not None

    async def start(self) -> None:
        """Open the writer's connection and start its thread and the reader; idempotent."""
        if self._writer is not None:
            return
        ready: Future[None] = Future()
        writer = threading.Thread(
            target=self._run_writer, args=(ready,), name=f"{self._name}-writer", daemon=True
        )
        writer.start()
        try:
            await asyncio.wrap_future(ready)
        except Exception as exc:
            writer.join()
            raise self._error(f"cannot open {self._name}: {type(exc).__name__}: {exc}") from exc
        self._writer = writer
        if self._switch_interval is not None and sys.getswitchinterval() > self._switch_interval:
            sys.setswitchinterval(self._switch_interval)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self._name}-read")
        with self._lock:
            self._accepting = True

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

    # --- submitting ------------------------------------------------------------------------

    def submit(
        self, op: Callable[[sqlite3.Connection], R], *, writes: int = 1
    ) -> asyncio.Future[R]:
        """Run ``op`` alone, in its place in the batch; ``writes=0`` for a read-only op."""
        loop = asyncio.get_running_loop()
        return self._queue_request(_Request(op, None, None, writes, loop.create_future(), loop))

    def submit_batched(self, kind: Batched[P, R], payload: P, writes: int) -> asyncio.Future[R]:
        """Run ``payload`` through ``kind.run`` together with its neighbours of that kind."""
        loop = asyncio.get_running_loop()
        return self._queue_request(
            _Request(None, kind, payload, writes, loop.create_future(), loop)
        )

    async def read(self, query: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``query`` on the read connection, in the reader thread."""
        if self._reader is None or not self._accepting:
            raise self._error(f"{self._name} is not open")

        def run() -> R:
            if self._read_conn is None:
                self._read_conn = self._connect_reader()
            return query(self._read_conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, run)
        except sqlite3.Error as exc:
            raise self._error(f"{type(exc).__name__}: {exc}") from exc

    def _queue_request(self, request: _Request) -> asyncio.Future[Any]:
        # Requests made during one event-loop iteration travel to the writer as one item:
        # one wake-up, one transaction, however many webhook requests are in flight.
        if not self._accepting:
            raise self._error(f"{self._name} is not open")
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
        error = self._error(f"{self._name} is not open")
        _resolve([(request, False, error) for request in requests])

    # --- the writer thread -----------------------------------------------------------------

    def _run_writer(self, ready: Future[None]) -> None:
        try:
            conn = self._connect_writer()
        except Exception as exc:  # reported to start() through the future
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
        results: list[_Result] = []
        op_failed = False
        try:
            if writes:
                conn.execute("BEGIN IMMEDIATE")
            op_failed = True
            leading = [r for r in batch if r.kind is not None and r.kind.first]
            if leading:
                _run_in_order(conn, leading, results)
                batch_rest = [r for r in batch if r.kind is None or not r.kind.first]
                _run_in_order(conn, batch_rest, results)
            else:
                _run_in_order(conn, batch, results)
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
            error = self._error(f"{type(exc).__name__}: {exc}")
            results = [(request, False, error) for request in batch]
        else:
            if writes and self._on_commit is not None:
                try:
                    self._on_commit(writes)
                except Exception:  # a metrics hook must never stop the writer thread
                    _log.exception("%s on_commit hook failed", self._name)
        _resolve(results)

    # --- the reader thread -----------------------------------------------------------------

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None


def _run_in_order(
    conn: sqlite3.Connection, requests: list[_Request], results: list[_Result]
) -> None:
    """Each op in its place; a run of neighbouring requests of one kind in one call."""
    run: list[_Request] = []
    for request in requests:
        if run and (request.kind is None or request.kind is not run[0].kind):
            _apply_run(conn, run, results)
            run = []
        if request.op is not None:
            results.append((request, True, request.op(conn)))
        else:
            run.append(request)
    if run:
        _apply_run(conn, run, results)


def _apply_run(conn: sqlite3.Connection, run: list[_Request], results: list[_Result]) -> None:
    kind = run[0].kind
    assert kind is not None
    values = kind.run(conn, [request.payload for request in run])
    results.extend((request, True, value) for request, value in zip(run, values, strict=True))


def _resolve(results: list[_Result]) -> None:
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
