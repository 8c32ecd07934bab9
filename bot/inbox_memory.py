"""An in-memory ``Inbox`` and ``WindowStore`` with the durable inbox's semantics, minus durability.

For tests and ``INBOX_BACKEND=memory``: deduplication by key, pending / done / dead events,
the reply outbox, replay of both dead-letter kinds, window times, conversation state.
Everything is lost when the process exits.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.inbox import (
    UNSETTLED,
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
from bot.state import MemoryStateStore, StateUpdate

_PENDING, _DONE, _DEAD = "pending", "done", "dead"


@dataclass(slots=True)
class _Row:
    event: StoredEvent
    state: str = _PENDING
    done_at: float | None = None
    replayed: bool = False


class MemoryInbox:
    """Implements ``Inbox`` (a ``StateStore`` too) and ``WindowStore``; ``clock`` (wall seconds)
    is injectable."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rows: dict[int, _Row] = {}  # insertion order = arrival order
        self._by_key: dict[str, int] = {}
        self._replies: dict[int, StoredReply] = {}  # insertion order = commit order
        self._replayed_replies: list[int] = []
        self._windows: dict[tuple[str, str], int] = {}
        self._state = MemoryStateStore()
        self._next_id = 1
        self._next_reply_id = 1
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    async def ping(self) -> None:
        self._check_open()

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
        self._check_open()
        for row in self._rows.values():
            row.replayed = False
        return [row.event for row in self._rows.values() if row.state == _PENDING]

    async def unsettled_replies(self) -> list[StoredReply]:
        self._check_open()
        self._replayed_replies.clear()
        return [r for r in self._replies.values() if r.state in UNSETTLED]

    async def take_replayed(self) -> Replayed:
        self._check_open()
        events = []
        for row in self._rows.values():
            if row.replayed:
                row.replayed = False
                if row.state == _PENDING:
                    events.append(row.event)
        ids, self._replayed_replies = self._replayed_replies, []
        replies = [self._replies[i] for i in ids if self._replies[i].state is ReplyState.PENDING]
        return Replayed(events, replies)

    async def commit_handled(
        self, event_id: int, replies: Sequence[NewReply], state: StateUpdate | None = None
    ) -> list[StoredReply]:
        self._check_open()
        row = self._rows.get(event_id)
        if row is None:
            raise InboxError(f"no event {event_id}")
        if row.state == _DONE:  # a retry whose first answer was lost
            return [r for r in self._replies.values() if r.event_id == event_id]
        if state is not None:
            self._state.put(state)  # first: a state that is not JSON fails the whole commit
        now = self._clock()
        stored = []
        for reply in replies:
            new = StoredReply(
                id=self._next_reply_id,
                event_id=event_id,
                n=reply.n,
                page_id=reply.page_id,
                psid=reply.psid,
                body=reply.body,
                state=reply.state,
                created_at=now,
            )
            self._next_reply_id += 1
            self._replies[new.id] = new
            stored.append(new)
        row.state, row.done_at, row.replayed = _DONE, now, False
        return stored

    async def record_failure(self, event_id: int, attempts: int, error: str) -> None:
        self._check_open()
        if row := self._rows.get(event_id):
            row.event = dataclasses.replace(row.event, attempts=attempts, last_error=error)

    async def dead_letter(self, event_id: int, error: str) -> None:
        self._check_open()
        if row := self._rows.get(event_id):
            row.state, row.done_at, row.replayed = _DEAD, self._clock(), False
            row.event = dataclasses.replace(row.event, last_error=error)

    async def update_replies(self, updates: Sequence[ReplyUpdate]) -> None:
        self._check_open()
        for update in updates:
            if reply := self._replies.get(update.reply_id):
                self._replies[update.reply_id] = dataclasses.replace(
                    reply, state=update.state, attempts=update.attempts, last_error=update.error
                )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        self._check_open()
        dead = [
            DeadLetter(DeadLetterKind.HANDLER_FAILED, row.event.id, row.event, row.event.last_error)
            for row in self._rows.values()
            if row.state == _DEAD
        ]
        dead += [
            DeadLetter(
                DeadLetterKind.REPLY_UNDELIVERABLE,
                reply.id,
                self._rows[reply.event_id].event,
                reply.last_error,
                reply,
            )
            for reply in self._replies.values()
            if reply.state is ReplyState.DEAD and reply.event_id in self._rows
        ]
        dead.sort(key=lambda d: (d.event.id, d.reply.n if d.reply else -1))
        return dead[:limit]

    async def replay(
        self, event_ids: Sequence[int] | None = None, reply_ids: Sequence[int] | None = None
    ) -> int:
        self._check_open()
        everything = event_ids is None and reply_ids is None
        events = set(event_ids or ())
        replies = set(reply_ids or ())
        count = 0
        for event_id, row in self._rows.items():
            if row.state == _DEAD and (everything or event_id in events):
                # A replayed event gets a fresh set of attempts.
                row.state, row.done_at, row.replayed = _PENDING, None, True
                row.event = dataclasses.replace(row.event, attempts=0)
                count += 1
        now = self._clock()
        for reply_id, reply in self._replies.items():
            if reply.state is ReplyState.DEAD and (everything or reply_id in replies):
                # A fresh deadline, counted from the replay.
                self._replies[reply_id] = dataclasses.replace(
                    reply, state=ReplyState.PENDING, attempts=0, created_at=now
                )
                self._replayed_replies.append(reply_id)
                count += 1
        return count

    async def stats(self) -> InboxStats:
        self._check_open()
        pending = [row.event.received_at for row in self._rows.values() if row.state == _PENDING]
        dead = sum(1 for row in self._rows.values() if row.state == _DEAD)
        dead += sum(1 for r in self._replies.values() if r.state is ReplyState.DEAD)
        return InboxStats(
            pending=len(pending),
            oldest_pending_received_at=min(pending) if pending else None,
            dead_letters=dead,
            unsettled_replies=sum(1 for r in self._replies.values() if r.state in UNSETTLED),
        )

    async def purge(self, done_before: float) -> int:
        self._check_open()
        keep = {r.event_id for r in self._replies.values() if not _forgettable(r.state)}
        old = [
            event_id
            for event_id, row in self._rows.items()
            if row.state == _DONE
            and row.done_at is not None
            and row.done_at < done_before
            and event_id not in keep
        ]
        for event_id in old:
            del self._by_key[self._rows.pop(event_id).event.dedup_key]
        gone = set(old)
        self._replies = {i: r for i, r in self._replies.items() if r.event_id not in gone}
        return len(old)

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        self._check_open()
        key = (page_id, psid)
        if at_ms > self._windows.get(key, -1):
            self._windows[key] = at_ms

    async def forget_windows(self, opened_before_ms: int) -> int:
        self._check_open()
        old = [key for key, at in self._windows.items() if at < opened_before_ms]
        for key in old:
            del self._windows[key]
        return len(old)

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        self._check_open()
        return self._windows.get((page_id, psid))

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        self._check_open()
        return await self._state.load(page_id, psid)

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        self._check_open()
        await self._state.save(page_id, psid, data)

    def _check_open(self) -> None:
        if self._closed:
            raise InboxError("inbox is closed")


def _forgettable(state: ReplyState) -> bool:
    # Dead letters keep their event (replay needs it); unsettled replies are still in play.
    return state in (ReplyState.SENT, ReplyState.DROPPED)
