"""The durable inbox seam: what the HTTP edge writes and the workers read.

The edge calls ``enqueue`` and answers 200 only after it returns: from then on the event
survives ``kill -9``. The worker pool keeps its own in-memory schedule, loads ``pending()``
at start-up and records each step (``record_reply_sent``, ``mark_done``...) so a restart
neither loses an event nor sends a reply twice. SQLite is the embedded default
(``bot.inbox_sqlite``); a Redis Streams inbox would implement the same Protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class InboxError(RuntimeError):
    """The inbox could not store or update events (disk full, locked, closed...)."""


@dataclass(frozen=True, slots=True)
class InboxRecord:
    """One event as the edge hands it over, before it has an id."""

    page_id: str
    sender_key: str  # PSID of the conversation ("" when the event has none)
    kind: str  # bot.events.EventKind value
    timestamp_ms: int  # Meta's event timestamp (0 when absent)
    dedup_key: str
    payload: str  # the messaging object as JSON text
    traceparent: str | None  # W3C creation context of the producer span
    received_at: float  # wall-clock seconds when the edge accepted it


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event in the inbox, with its processing progress."""

    id: int
    page_id: str
    sender_key: str
    kind: str
    timestamp_ms: int
    dedup_key: str
    payload: str
    traceparent: str | None
    received_at: float
    attempts: int = 0
    replies_sent: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class InboxStats:
    pending: int
    oldest_pending_received_at: float | None
    dead_letters: int


class Inbox(Protocol):
    async def open(self) -> None:
        """Create or migrate storage; idempotent."""

    async def close(self) -> None:
        """Flush outstanding writes and release the storage."""

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        """Store records durably; ``None`` in the result marks a duplicate (same dedup key)."""

    async def pending(self) -> list[StoredEvent]:
        """Every event neither done nor dead-lettered, oldest first (start-up recovery)."""

    async def take_replayed(self) -> list[StoredEvent]:
        """Dead letters put back by ``replay`` since the last call (for a running pool)."""

    async def mark_done(self, event_id: int) -> None: ...

    def mark_done_nowait(self, event_id: int) -> asyncio.Future[None]:
        """Queue ``mark_done`` and return at once (write-behind on the workers' hot path).

        The write is ordered exactly where an awaited ``mark_done`` issued now would land; the
        future resolves once it is stored (or fails with ``InboxError``).
        """

    async def record_reply_sent(self, event_id: int, replies_sent: int) -> None:
        """Remember how many replies of this event reached the Send API."""

    async def record_failure(self, event_id: int, attempts: int, error: str) -> None: ...

    async def dead_letter(self, event_id: int, error: str) -> None: ...

    async def dead_letters(self, limit: int = 100) -> list[StoredEvent]: ...

    async def replay(self, event_ids: Sequence[int] | None = None) -> int:
        """Move dead letters (all, or the given ids) back to pending; returns how many."""

    async def stats(self) -> InboxStats: ...

    async def purge(self, done_before: float) -> int:
        """Forget done events older than ``done_before`` (ends their dedup retention)."""

    async def ping(self) -> None:
        """Raise ``InboxError`` unless the inbox can take a write now (``/readyz``)."""

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        """Record a window-opening user action (keeps the latest)."""

    def touch_window_nowait(self, page_id: str, psid: str, at_ms: int) -> asyncio.Future[None]:
        """Queue ``touch_window`` and return at once; see ``mark_done_nowait``."""

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        """Epoch ms of the user's last window-opening action, if any."""
