"""The durable inbox seam: events the edge stored, and the reply outbox the engine drains.

The edge calls ``enqueue`` and answers 200 only after it returns: from then on the event
survives ``kill -9``. The engine runs each pending event's handler once and stores the
outcome with ``commit_handled``: the event becomes done, its replies enter the outbox and the
conversation's new state (``StateUpdate``) is stored in ONE write, so a retry or a restart
never runs that handler again and never sees state from an attempt that was not committed.
Every inbox is also the handlers' ``StateStore`` (``load`` / ``save``). The outbox sender then
moves each reply through ``ReplyState`` with ``update_replies``.

Two dead-letter kinds share one list (``dead_letters``) and one ``replay``: an event whose
handler kept failing, and a reply the Send API would not take before its deadline.

SQLite is the embedded default (``bot.inbox_sqlite``); every backend runs the conformance
suite in ``tests/unit/bot/inbox_conformance.py``. Window times live behind ``WindowStore``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.state import StateStore, StateUpdate


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
    """An event in the inbox, with its failed handler attempts so far."""

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
    last_error: str | None = None


class ReplyState(enum.StrEnum):
    """Where one outbox reply is; ``PENDING``, ``SENDING`` and ``UNCERTAIN`` are unsettled."""

    PENDING = "pending"  # committed, not handed to the Send API (or known not delivered)
    SENDING = "sending"  # handed to the Send API; a crash here is settled by the echo rule
    UNCERTAIN = "uncertain"  # Graph may have it (answer lost): settled by the echo rule
    SENT = "sent"
    DROPPED = "dropped"  # deliberately not sent (window rule, policy); ``last_error`` says why
    DEAD = "dead"  # "reply undeliverable" dead letter, replayable

    @property
    def settled(self) -> bool:
        return self in (ReplyState.SENT, ReplyState.DROPPED, ReplyState.DEAD)


UNSETTLED = (ReplyState.PENDING, ReplyState.SENDING, ReplyState.UNCERTAIN)


@dataclass(frozen=True, slots=True)
class NewReply:
    """A handler's ``n``-th reply (0-based) as ``commit_handled`` stores it.

    ``state`` is ``PENDING`` (the engine's choice: see ``bot.processor``), or ``SENDING``
    when a sender claims it at once (its first call then needs no write of its own, but after
    a crash it waits for an echo even if it never left).
    """

    n: int
    page_id: str
    psid: str
    body: str  # the bot.routing.Reply as JSON (bot.outbox_codec)
    state: ReplyState = ReplyState.PENDING


@dataclass(frozen=True, slots=True)
class StoredReply:
    """A reply in the outbox; ``id`` grows in commit order (the order replies leave in)."""

    id: int
    event_id: int
    n: int
    page_id: str
    psid: str
    body: str
    state: ReplyState
    created_at: float  # wall-clock seconds of the commit (or of the last replay)
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyUpdate:
    """A reply's new state; ``error`` is the drop or dead-letter reason."""

    reply_id: int
    state: ReplyState
    attempts: int
    error: str | None = None


class DeadLetterKind(enum.StrEnum):
    HANDLER_FAILED = "handler_failed"
    REPLY_UNDELIVERABLE = "reply_undeliverable"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: ``id`` is the event id (handler failed) or the reply id."""

    kind: DeadLetterKind
    id: int
    event: StoredEvent
    error: str | None
    reply: StoredReply | None = None


@dataclass(frozen=True, slots=True)
class Replayed:
    """What ``replay`` put back since the last ``take_replayed``."""

    events: list[StoredEvent] = field(default_factory=list)
    replies: list[StoredReply] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InboxStats:
    pending: int
    oldest_pending_received_at: float | None
    dead_letters: int  # of both kinds
    unsettled_replies: int = 0


class Inbox(StateStore, Protocol):
    async def open(self) -> None:
        """Create or migrate storage; idempotent."""

    async def close(self) -> None:
        """Flush outstanding writes and release the storage."""

    async def ping(self) -> None:
        """Raise ``InboxError`` unless the inbox can take a write now (``/readyz``)."""

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        """Store records durably; ``None`` in the result marks a duplicate (same dedup key)."""

    async def pending(self) -> list[StoredEvent]:
        """Events not handled yet and not dead-lettered, oldest first (start-up recovery).

        Also forgets replay marks: an engine starting from this list has them all."""

    async def unsettled_replies(self) -> list[StoredReply]:
        """Replies ``PENDING``, ``SENDING`` or ``UNCERTAIN``, in commit order (start-up)."""

    async def take_replayed(self) -> Replayed:
        """Dead letters put back by ``replay`` since the last call (for a running engine)."""

    async def commit_handled(
        self, event_id: int, replies: Sequence[NewReply], state: StateUpdate | None = None
    ) -> list[StoredReply]:
        """In one write: the event is done, its replies enter the outbox (``NewReply.state``)
        and ``state`` replaces its conversation's state (empty data deletes it).

        Idempotent: a retry for an event already done (its first answer lost) changes nothing
        and returns the replies stored the first time."""

    async def record_failure(self, event_id: int, attempts: int, error: str) -> None: ...

    async def dead_letter(self, event_id: int, error: str) -> None:
        """The handler gave up: a "handler failed" dead letter."""

    async def update_replies(self, updates: Sequence[ReplyUpdate]) -> None:
        """Apply reply state changes in one write (``DEAD``: "reply undeliverable")."""

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Both kinds, oldest event first."""

    async def replay(
        self, event_ids: Sequence[int] | None = None, reply_ids: Sequence[int] | None = None
    ) -> int:
        """Put dead letters back (all when both are ``None``); returns how many."""

    async def stats(self) -> InboxStats: ...

    async def purge(self, done_before: float) -> int:
        """Forget done events older than ``done_before`` whose replies are all settled."""


class WindowStore(Protocol):
    """Users' last window-opening action per page (the 24-hour rule's input)."""

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        """Record a window-opening user action (keeps the latest)."""

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        """Epoch ms of the user's last window-opening action, if any."""

    async def forget_windows(self, opened_before_ms: int) -> int:
        """Forget window times older than ``opened_before_ms``; returns how many.

        An action older than the longest window allows no send, exactly like no action, so
        forgetting it changes no decision and keeps the store from growing with every user
        the page has ever had.
        """
