"""An in-memory ``Inbox`` with the durable inbox's semantics, minus the durability.

For tests and ``INBOX_BACKEND=memory``: deduplication by key, pending / done / dead states,
replay of dead letters, window times. Everything is lost when the process exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.inbox import InboxError, InboxRecord, InboxStats, StoredEvent

_PENDING, _DONE, _DEAD = "pending", "done", "dead"


@dataclass(slots=True)
class _Row:
    event: StoredEvent
    state: str = _PENDING
    done_at: float | None = None


class MemoryInbox:
    """Implements ``bot.inbox.Inbox``; ``clock`` (wall seconds) is injectable for purge tests."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rows: dict[int, _Row] = {}  # insertion order = arrival order
        self._by_key: dict[str, int] = {}
        self._replayed: list[int] = []
        self._windows: dict[tuple[str, str], int] = {}
        self._next_id = 1
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        self._check_open()
        stored: list[StoredEvent | None] = []
        for record in records:
            if record.dedup_key in self._by_key:
                stored.append(None)
                continue
            event = StoredEvent(
                id=self._next_id,
                page_id=record.page_id,
                sender_key=record.sender_key,
                kind=record.kind,
                timestamp_ms=record.timestamp_ms,
                dedup_key=record.dedup_key,
                payload=record.payload,
                traceparent=record.traceparent,
                received_at=record.received_at,
            )
            self._next_id += 1
            self._rows[event.id] = _Row(event)
            self._by_key[record.dedup_key] = event.id
            stored.append(event)
        return stored

    async def pending(self) -> list[StoredEvent]:
        """Also forgets replay marks: a pool starting from this list has them all."""
        self._check_open()
        self._replayed.clear()
        return [row.event for row in self._rows.values() if row.state == _PENDING]

    async def take_replayed(self) -> list[StoredEvent]:
        self._check_open()
        ids, self._replayed = self._replayed, []
        return [
            self._rows[i].event for i in ids if i in self._rows and self._rows[i].state == _PENDING
        ]

    # Updates of an unknown (e.g. purged) id do nothing, like an UPDATE matching no row.

    async def mark_done(self, event_id: int) -> None:
        self._mark_done(event_id)

    def mark_done_nowait(self, event_id: int) -> asyncio.Future[None]:
        # Nothing to wait for in memory: apply now, hand back a finished future.
        self._mark_done(event_id)
        return _done()

    def _mark_done(self, event_id: int) -> None:
        if row := self._row(event_id):
            row.state, row.done_at = _DONE, self._clock()

    async def record_reply_sent(self, event_id: int, replies_sent: int) -> None:
        if row := self._row(event_id):
            row.event = dataclasses.replace(row.event, replies_sent=replies_sent)

    async def record_failure(self, event_id: int, attempts: int, error: str) -> None:
        if row := self._row(event_id):
            row.event = dataclasses.replace(row.event, attempts=attempts, last_error=error)

    async def dead_letter(self, event_id: int, error: str) -> None:
        if row := self._row(event_id):
            row.state, row.done_at = _DEAD, self._clock()
            row.event = dataclasses.replace(row.event, last_error=error)

    async def dead_letters(self, limit: int = 100) -> list[StoredEvent]:
        self._check_open()
        dead = [row.event for row in self._rows.values() if row.state == _DEAD]
        return dead[:limit]

    async def replay(self, event_ids: Sequence[int] | None = None) -> int:
        self._check_open()
        wanted = set(event_ids) if event_ids is not None else None
        count = 0
        for event_id, row in self._rows.items():
            if row.state == _DEAD and (wanted is None or event_id in wanted):
                # A replayed event gets a fresh set of attempts; replies already sent stay sent.
                row.state, row.done_at = _PENDING, None
                row.event = dataclasses.replace(row.event, attempts=0)
                self._replayed.append(event_id)
                count += 1
        return count

    async def stats(self) -> InboxStats:
        self._check_open()
        pending = [row.event.received_at for row in self._rows.values() if row.state == _PENDING]
        dead = sum(1 for row in self._rows.values() if row.state == _DEAD)
        return InboxStats(
            pending=len(pending),
            oldest_pending_received_at=min(pending) if pending else None,
            dead_letters=dead,
        )

    async def purge(self, done_before: float) -> int:
        self._check_open()
        old = [
            event_id
            for event_id, row in self._rows.items()
            if row.state == _DONE and row.done_at is not None and row.done_at < done_before
        ]
        for event_id in old:
            del self._by_key[self._rows.pop(event_id).event.dedup_key]
        return len(old)

    async def ping(self) -> None:
        self._check_open()

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        self._touch_window(page_id, psid, at_ms)

    def _touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        self._check_open()
        key = (page_id, psid)
        if at_ms > self._windows.get(key, -1):
            self._windows[key] = at_ms

    def touch_window_nowait(self, page_id: str, psid: str, at_ms: int) -> asyncio.Future[None]:
        self._touch_window(page_id, psid, at_ms)
        return _done()

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        self._check_open()
        return self._windows.get((page_id, psid))

    def _row(self, event_id: int) -> _Row | None:
        self._check_open()
        return self._rows.get(event_id)

    def _check_open(self) -> None:
        if self._closed:
            raise InboxError("inbox is closed")


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
