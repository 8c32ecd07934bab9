"""What happened on the platform: user actions, webhook deliveries, Send API calls, alerts.

Bounded: ``retention`` records per kind (the oldest are dropped and counted), and every index
(by action id, by mid, per PSID) forgets a record when its ring drops it, so memory follows
the settings whatever the number of users. Filterable by page, PSID and mid, and awaitable:
long-polls wait on futures that the recording call resolves, never on a polling loop. Records
are stamped with the platform clock; waiter timeouts are real seconds.

Threading rule: any thread may call any public method. Every public method does all its reads
and writes of journal state under the one lock; ``_private`` methods assume it is held. Waiters
are coroutines; a recording thread wakes them through their own event loop.

Reply accounting is ``mock_meta.accounting``: only acknowledged actions of kinds that expect an
answer are owed a reply; each reply answers the oldest owed action sent before it, later ones
are extras, and actions the bot never acknowledged are ``undelivered``.

>>> import asyncio
>>> from prometheus_client import CollectorRegistry
>>> from mock_meta.clock import ControllableClock
>>> from mock_meta.metrics import MockMetrics
>>> clock = ControllableClock(start=1_700_000_000.0, frozen=True)
>>> journal = Journal(clock, MockMetrics(CollectorRegistry()))
>>> action = journal.record_action("6543210987654321", "104501234567890", "m_1", "text")
>>> clock.advance(1.5)  # the bot answers via the Send API 1.5 s later (platform clock)
>>> reply = journal.record_send(
...     page_id="104501234567890",
...     psid="6543210987654321",
...     request={"recipient": {"id": "6543210987654321"}, "message": {"text": "hi"}},
...     response={"recipient_id": "6543210987654321", "message_id": "m_2"},
...     status=200,
...     message_id="m_2",
... )
>>> result = asyncio.run(journal.wait_reply("6543210987654321", "m_1", timeout=5))
>>> result.time_to_reply_seconds, result.ack_latency_seconds
(1.5, None)

``ack_latency_seconds`` is None here because no delivery of ``m_1`` was journaled; the
delivery engine records one (``record_delivery``, ``delivery_attempted``) for each action.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from mock_meta.accounting import REPLY_EXPECTED_KINDS, Answered, Conversation, Tally
from mock_meta.clock import Clock
from mock_meta.journal_records import (
    FINISHED_STATES,
    REDACTED,
    ActionRecord,
    ActionState,
    AlertRecord,
    AttemptRecord,
    Attribution,
    DeliveryRecord,
    ReplyResult,
    SendRecord,
    SubscriptionRecord,
    redact,
    redact_top_level,
)
from mock_meta.metrics import MockMetrics

__all__ = [
    "DEFAULT_RETENTION",
    "FINISHED_STATES",
    "REDACTED",
    "ActionRecord",
    "ActionState",
    "AlertRecord",
    "AttemptRecord",
    "Attribution",
    "DeliveryRecord",
    "Journal",
    "JournalListener",
    "ReplyResult",
    "SendRecord",
    "SubscriptionRecord",
    "redact",
    "redact_top_level",
]

DEFAULT_RETENTION = 10_000
# Recent sends kept per PSID for the waiters (the full history is in the bounded deque).
_PER_PSID_SENDS = 256
R = TypeVar("R")


@dataclass(slots=True)
class _Ring(Generic[R]):
    """A bounded list that reports what it drops (so indexes can forget it too)."""

    limit: int
    items: deque[R] = field(default_factory=deque)
    dropped: int = 0

    def append(self, item: R) -> R | None:
        evicted = None
        if len(self.items) >= self.limit:
            evicted = self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        return evicted


class JournalListener(Protocol):
    """Sees each record as it is made (any kind) and each ``clear()``."""

    def recorded(self, record: Any) -> None: ...

    def cleared(self) -> None: ...


@dataclass(slots=True, eq=False)
class _PsidIndex:
    """What the journal keeps per PSID; dropped once no retained record or waiter needs it."""

    conversation: Conversation
    sends: deque[SendRecord] = field(default_factory=lambda: deque(maxlen=_PER_PSID_SENDS))
    send_counts: Counter[bool] = field(default_factory=Counter)  # messages_only -> count
    refs: int = 0  # retained actions and sends of this PSID
    reply_waiters: dict[asyncio.Future[SendRecord], int] = field(default_factory=dict)
    send_waiters: dict[asyncio.Future[None], tuple[int, bool]] = field(default_factory=dict)

    @property
    def unused(self) -> bool:
        return (
            self.refs == 0
            and not self.reply_waiters
            and not self.send_waiters
            and self.conversation.idle
        )


class Journal:
    """Thread-safe recorder with async waiters (see the threading rule in the module doc)."""

    def __init__(
        self,
        clock: Clock,
        metrics: MockMetrics,
        *,
        retention: int = DEFAULT_RETENTION,
        reply_expected: Collection[str] = REPLY_EXPECTED_KINDS,
    ) -> None:
        """``reply_expected``: the action kinds a reply is owed for (once acknowledged)."""
        if retention < 1:
            raise ValueError("retention must be >= 1")
        self._clock = clock
        self._metrics = metrics
        self._retention = retention
        self._reply_expected = frozenset(reply_expected)
        self._lock = threading.Lock()
        self._listeners: list[JournalListener] = []
        self._init_state()

    def _init_state(self) -> None:
        n = self._retention
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._actions: _Ring[ActionRecord] = _Ring(n)
        self._deliveries: _Ring[DeliveryRecord] = _Ring(n)
        self._sends: _Ring[SendRecord] = _Ring(n)
        self._alerts: _Ring[AlertRecord] = _Ring(n)
        self._subscriptions: _Ring[SubscriptionRecord] = _Ring(n)
        self._actions_by_mid: dict[str, ActionRecord] = {}
        self._deliveries_by_mid: dict[str, list[DeliveryRecord]] = {}
        self._psids: dict[str, _PsidIndex] = {}
        self._tally: Tally = Counter()
        self._send_codes: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        self._delivery_waiters: dict[str, dict[asyncio.Future[None], None]] = {}

    def clear(self) -> None:
        """Forget everything (``POST /_mock/reset``); pending waiters simply time out."""
        with self._lock:
            self._init_state()
        for listener in self._listeners:
            listener.cleared()

    def subscribe(self, listener: JournalListener) -> None:
        """Tell ``listener`` about every new record and every ``clear()`` (the web console's
        live feed); it is called outside the lock, on the recording thread, and must be quick."""
        self._listeners.append(listener)

    def _notify(self, record: Any) -> None:
        for listener in self._listeners:
            listener.recorded(record)

    def mark(self) -> int:
        """The latest record's sequence number: records made after this call compare greater."""
        with self._lock:
            return self._last_seq

    def posting(self, records: Iterable[DeliveryRecord]) -> int:
        """The engine is about to POST ``records``: from now on the bot may answer their
        actions. Returns the mark to store in the attempts' ``sent_mark``."""
        with self._lock:
            for record in records:
                action = self._action_of(record)
                if action is not None:
                    self._conv(action).sent(action, mark=self._last_seq)
            return self._last_seq

    # ---- recording ---------------------------------------------------------------------------
    def record_action(
        self,
        psid: str,
        page_id: str,
        mid: str | None,
        event_type: str,
        *,
        expects_reply: bool = True,
    ) -> ActionRecord:
        """Record a user action BEFORE enqueueing its delivery (waiters rely on it).

        ``mid`` is the action id its deliveries carry; ``expects_reply=False`` (standby
        copies) overrides a kind that is otherwise owed a reply.
        """
        with self._lock:
            owed_kind = expects_reply and event_type in self._reply_expected
            record = ActionRecord(
                self._next_seq(), self._clock.now(), psid, page_id, mid, event_type, owed_kind
            )
            self._totals["actions"] += 1
            self._keep(self._actions, record, self._forget_action)
            if mid is not None:
                self._actions_by_mid[mid] = record
            index = self._index(psid)
            index.refs += 1
            index.conversation.add_action(record, owed_kind=owed_kind)
        self._metrics.user_actions.labels(event_type=event_type).inc()
        self._notify(record)
        return record

    def action_not_delivered(self, mid: str, reason: str) -> None:
        """No app was there to deliver action ``mid`` to: it is undelivered, never owed."""
        with self._lock:
            action = self._actions_by_mid.get(mid)
            if action is not None and action.deliveries == 0:
                self._observe_answers(self._conv(action).undelivered(action, reason))

    def record_delivery(
        self,
        *,
        delivery_id: str,
        app_id: str,
        page_id: str,
        psid: str | None,
        mid: str | None,
        event_type: str,
        field: str,
        standby: bool = False,
    ) -> DeliveryRecord:
        with self._lock:
            record = DeliveryRecord(
                self._next_seq(),
                delivery_id,
                app_id,
                page_id,
                psid,
                mid,
                event_type,
                field,
                standby,
                self._clock.now(),
            )
            self._keep(self._deliveries, record, self._forget_delivery)
            if mid is not None:
                self._deliveries_by_mid.setdefault(mid, []).append(record)
            action = self._action_of(record)
            if action is not None:
                action.deliveries += 1
                action.open_deliveries += 1
        self._notify(record)
        return record

    def delivery_attempted(self, record: DeliveryRecord, attempt: AttemptRecord) -> None:
        with self._lock:
            record.attempts.append(attempt)
            if attempt.attempt > 1 and not attempt.duplicate:
                self._totals["retries"] += 1
            if attempt.outcome == "success" and record.ack_latency_seconds is None:
                record.ack_latency_seconds = attempt.latency_seconds
            action = self._action_of(record)
            if action is None:
                return
            conv = self._conv(action)
            mark = attempt.sent_mark if attempt.sent_mark is not None else self._last_seq
            if not attempt.reached_bot:
                if not any(a.reached_bot for a in record.attempts):
                    # Nothing reached the bot after all: it cannot have answered this action.
                    self._observe_answers(conv.unsent(action, mark=mark))
                return
            conv.sent(action, mark=mark)
            if attempt.outcome == "success":
                self._observe_answers(conv.acknowledged(action))

    def delivery_retrying(self, record: DeliveryRecord) -> None:
        with self._lock:
            record.state = "retrying"

    def delivery_finished(
        self, record: DeliveryRecord, state: str, *, reason: str | None = None
    ) -> None:
        """Settle a delivery (``delivered``, ``dropped`` or ``skipped``) and wake its waiters."""
        if state not in FINISHED_STATES:
            raise ValueError(f"state must be one of {sorted(FINISHED_STATES)}")
        with self._lock:
            was_finished = record.finished
            record.state = state
            record.reason = reason
            if state == "delivered":
                record.delivered_at = self._clock.now()
            action = self._action_of(record)
            if action is not None and not was_finished:
                action.open_deliveries -= 1
                if action.open_deliveries == 0 and not action.acknowledged:
                    why = state if reason is None else f"{state}: {reason}"
                    self._observe_answers(self._conv(action).undelivered(action, why))
            if record.mid is not None and self._settled(record.mid) is not None:
                for fut in self._delivery_waiters.pop(record.mid, {}):
                    _resolve(fut, None)

    def record_send(
        self,
        *,
        page_id: str | None,
        psid: str | None,
        request: dict[str, Any],
        response: dict[str, Any],
        status: int,
        error_code: int | None = None,
        error_subcode: int | None = None,
        message_id: str | None = None,
        kind: str = "message",
        call: dict[str, Any] | None = None,
    ) -> SendRecord:
        """Record a Send API call; a successful message is a reply, attributed by
        ``mock_meta.accounting`` (possibly later, once the action it may answer is acked).

        ``request`` and ``response`` are stored as given, top-level secrets replaced
        (:func:`redact_top_level`): callers must not change them afterwards.
        """
        stored_request = redact_top_level(request)
        stored_response = redact_top_level(response) if type(response) is dict else response
        with self._lock:
            record = SendRecord(
                self._next_seq(),
                self._clock.now(),
                page_id,
                psid,
                kind,
                stored_request,
                stored_response,
                status,
                error_code,
                error_subcode,
                message_id,
                call=call,
            )
            self._totals["sends"] += 1
            self._send_codes["none" if error_code is None else str(error_code)] += 1
            self._keep(self._sends, record, self._forget_send)
            if psid is not None:
                index = self._index(psid)
                index.refs += 1
                index.sends.append(record)
                index.send_counts[False] += 1
                if record.is_reply:
                    index.send_counts[True] += 1
                    self._observe_answers(index.conversation.add_reply(record))
                    for fut in index.reply_waiters:
                        _resolve(fut, record)
                    index.reply_waiters.clear()
                self._wake_send_waiters(index)
        self._notify(record)
        return record

    def record_alert(self, app_id: str, page_id: str, kind: str, message: str) -> AlertRecord:
        with self._lock:
            record = AlertRecord(
                self._next_seq(), self._clock.now(), app_id, page_id, kind, message
            )
            self._keep(self._alerts, record, None)
        self._notify(record)
        return record

    def record_subscription(
        self,
        app_id: str,
        page_id: str,
        change: str,
        *,
        fields: Iterable[str] | None = None,
        reason: str | None = None,
    ) -> SubscriptionRecord:
        with self._lock:
            record = SubscriptionRecord(
                self._next_seq(),
                self._clock.now(),
                app_id,
                page_id,
                change,
                None if fields is None else list(fields),
                reason,
            )
            self._keep(self._subscriptions, record, None)
        self._notify(record)
        return record

    # ---- queries -------------------------------------------------------------------------
    def actions(self, **filters: str | None) -> list[ActionRecord]:
        return self._filter(self._actions, filters)

    def deliveries(self, **filters: str | None) -> list[DeliveryRecord]:
        return self._filter(self._deliveries, filters)

    def sends(self, **filters: str | None) -> list[SendRecord]:
        """Filter ``mid`` matches the reply's own ``message_id`` or the action it answers."""
        mid = filters.pop("mid", None)
        found: list[SendRecord] = self._filter(self._sends, filters)
        return found if mid is None else [s for s in found if mid in (s.message_id, s.answers_mid)]

    def alerts(self, **filters: str | None) -> list[AlertRecord]:
        return self._filter(self._alerts, filters)

    def subscriptions(self, **filters: str | None) -> list[SubscriptionRecord]:
        return self._filter(self._subscriptions, filters)

    def action(self, mid: str) -> ActionRecord | None:
        """The retained action with this action id (a message's mid, or ``act_N``)."""
        with self._lock:
            return self._actions_by_mid.get(mid)

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped()

    @property
    def tracked_psids(self) -> int:
        """PSIDs with a live index (bounded by the retained records and waiters)."""
        with self._lock:
            return len(self._psids)

    def summary(self) -> dict[str, Any]:
        """Counts since the last reset (deliveries by state over the retained records).

        ``unanswered`` counts only acknowledged actions owed a reply; ``undelivered`` ones the
        bot never acknowledged; ``replies_held`` replies waiting for an in-flight action.
        """
        with self._lock:
            states = Counter(d.state for d in self._deliveries.items)
            tally = self._tally
            return {
                "actions": self._totals["actions"],
                "owed": tally[ActionState.ANSWERED] + tally[ActionState.UNANSWERED],
                "answered": tally[ActionState.ANSWERED],
                "unanswered": tally[ActionState.UNANSWERED],
                "in_flight": tally[ActionState.IN_FLIGHT],
                "undelivered": tally[ActionState.UNDELIVERED],
                "no_reply_expected": tally[ActionState.NO_REPLY_EXPECTED],
                "extra_replies": tally[Attribution.EXTRA],
                "replies_held": tally[Attribution.HELD],
                "deliveries": dict(states),
                "sends": self._totals["sends"],
                "sends_by_error_code": dict(self._send_codes),
                "retries": self._totals["retries"],
                "journal_dropped": self._dropped(),
            }

    # ---- waiters -------------------------------------------------------------------------
    async def wait_reply(
        self,
        psid: str | None,
        mid: str,
        timeout: float,  # noqa: ASYNC109 - the long-polls pass real seconds
    ) -> ReplyResult | None:
        """The bot's first message to ``psid`` recorded after action ``mid`` (None on timeout).

        ``psid`` may be None when ``mid`` is a retained action id (its user is known). Also
        reports the ack latency of the delivery that carried ``mid`` (waiting, within the same
        timeout, for that delivery's 200 when the reply overtook it).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._lock:
            action = self._actions_by_mid.get(mid)
            psid = psid or (action.psid if action is not None else None)
            if psid is None:
                return None
            anchor = action.seq if action is not None else self._last_seq
            reply = self._first_reply_after(psid, anchor)
            fut: asyncio.Future[SendRecord] | None = None
            if reply is None:
                fut = loop.create_future()
                self._index(psid).reply_waiters[fut] = anchor
        if fut is not None:
            try:
                reply = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                return None
            finally:
                self._discard_reply_waiter(psid, fut)
        assert reply is not None
        started = action.at if action is not None else reply.at
        delivery = self._settled_locked(mid)
        if delivery is None and self._first_delivery(mid) is not None:
            # The reply overtook the delivery's 200 (the bot acks, then answers): wait for it.
            delivery = await self.wait_delivery(mid, max(0.0, deadline - loop.time()))
            delivery = delivery or self._first_delivery(mid)
        return ReplyResult(
            reply,
            max(0.0, reply.at - started),
            delivery.ack_latency_seconds if delivery is not None else None,
            action,
        )

    async def wait_no_reply(self, psid: str, within: float) -> SendRecord | None:
        """None when no message reached ``psid`` within ``within`` seconds; else that message."""
        fut: asyncio.Future[SendRecord] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._index(psid).reply_waiters[fut] = self._last_seq
        try:
            return await asyncio.wait_for(fut, within)
        except TimeoutError:
            return None
        finally:
            self._discard_reply_waiter(psid, fut)

    async def wait_delivery(self, mid: str, timeout: float) -> DeliveryRecord | None:  # noqa: ASYNC109
        """The delivery carrying ``mid`` (an action id) once settled (delivered or given up)."""
        with self._lock:
            settled = self._settled(mid)
            if settled is not None:
                return settled
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._delivery_waiters.setdefault(mid, {})[fut] = None
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            with self._lock:
                waiters = self._delivery_waiters.get(mid)
                if waiters is not None:
                    waiters.pop(fut, None)
                    if not waiters:
                        del self._delivery_waiters[mid]
        return self._settled_locked(mid)

    async def wait_sends(
        self,
        psid: str,
        count: int,
        timeout: float,  # noqa: ASYNC109
        *,
        messages_only: bool = False,
    ) -> list[SendRecord]:
        """Recent Send API calls to ``psid`` once at least ``count`` were made since the reset
        (fewer if the timeout hits first: check ``len``)."""
        with self._lock:
            index = self._index(psid)
            fut: asyncio.Future[None] | None = None
            if index.send_counts[messages_only] < count:
                fut = asyncio.get_running_loop().create_future()
                index.send_waiters[fut] = (count, messages_only)
        if fut is not None:
            try:
                await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                pass
        with self._lock:
            index = self._index(psid)
            if fut is not None:
                index.send_waiters.pop(fut, None)
            recent = list(index.sends)
            self._release(psid)
        return [s for s in recent if s.is_reply] if messages_only else recent

    # ---- internals (the lock is held) -----------------------------------------------------
    def _next_seq(self) -> int:
        assert self._lock.locked(), "journal state changed outside the lock"
        self._last_seq = next(self._seq)
        return self._last_seq

    def _dropped(self) -> int:
        rings = (self._actions, self._deliveries, self._sends, self._alerts, self._subscriptions)
        return sum(r.dropped for r in rings)

    def _index(self, psid: str) -> _PsidIndex:
        assert self._lock.locked(), "journal index used outside the lock"
        index = self._psids.get(psid)
        if index is None:
            index = self._psids[psid] = _PsidIndex(Conversation(self._tally))
        return index

    def _release(self, psid: str) -> None:
        index = self._psids.get(psid)
        if index is not None and index.unused:
            del self._psids[psid]

    def _conv(self, action: ActionRecord) -> Conversation:
        return self._index(action.psid).conversation

    def _action_of(self, delivery: DeliveryRecord) -> ActionRecord | None:
        """The user action a delivery carries (receipts and notices have none)."""
        if delivery.mid is None:
            return None
        action = self._actions_by_mid.get(delivery.mid)
        return action if action is not None and action.psid == delivery.psid else None

    def _observe_answers(self, answered: Answered) -> None:
        for _action, reply in answered:
            if reply.time_to_reply_seconds is not None:
                self._metrics.time_to_first_reply.observe(reply.time_to_reply_seconds)

    def _keep(self, ring: _Ring[R], record: R, forget: Callable[[R], None] | None) -> None:
        evicted = ring.append(record)
        if evicted is not None:
            self._metrics.journal_dropped.inc()
            if forget is not None:
                forget(evicted)

    def _forget_action(self, record: ActionRecord) -> None:
        if record.mid is not None and self._actions_by_mid.get(record.mid) is record:
            del self._actions_by_mid[record.mid]
        index = self._psids.get(record.psid)
        if index is not None:
            index.refs -= 1
            self._observe_answers(index.conversation.forget_action(record))
            self._release(record.psid)

    def _forget_send(self, record: SendRecord) -> None:
        index = self._psids.get(record.psid) if record.psid is not None else None
        if index is None or record.psid is None:
            return
        index.refs -= 1
        # The ring drops the oldest send, so it is the oldest of its PSID too.
        if index.sends and index.sends[0] is record:
            index.sends.popleft()
        index.conversation.forget_reply(record)
        self._release(record.psid)

    def _forget_delivery(self, record: DeliveryRecord) -> None:
        if record.mid is None:
            return
        records = self._deliveries_by_mid.get(record.mid, [])
        if record in records:
            records.remove(record)
        if not records:
            self._deliveries_by_mid.pop(record.mid, None)

    def _first_reply_after(self, psid: str, anchor: int) -> SendRecord | None:
        index = self._psids.get(psid)
        for send in index.sends if index is not None else ():
            if send.seq > anchor and send.is_reply:
                return send
        return None

    def _wake_send_waiters(self, index: _PsidIndex) -> None:
        for fut, (count, messages_only) in list(index.send_waiters.items()):
            if index.send_counts[messages_only] >= count:
                _resolve(fut, None)
                del index.send_waiters[fut]

    def _discard_reply_waiter(self, psid: str, fut: asyncio.Future[SendRecord]) -> None:
        with self._lock:
            index = self._psids.get(psid)
            if index is not None:
                index.reply_waiters.pop(fut, None)
                self._release(psid)

    def _settled(self, mid: str) -> DeliveryRecord | None:
        """All deliveries carrying ``mid`` finished: the first delivered one (or the first)."""
        records = self._deliveries_by_mid.get(mid)
        if not records or not all(r.finished for r in records):
            return None
        return next((r for r in records if r.state == "delivered"), records[0])

    def _settled_locked(self, mid: str) -> DeliveryRecord | None:
        with self._lock:
            return self._settled(mid)

    def _first_delivery(self, mid: str) -> DeliveryRecord | None:
        with self._lock:
            records = self._deliveries_by_mid.get(mid)
            return records[0] if records else None

    def _filter(self, ring: _Ring[Any], filters: dict[str, str | None]) -> list[Any]:
        wanted = {k: v for k, v in filters.items() if v is not None}
        unknown = set(wanted) - {"page_id", "psid", "mid", "app_id", "state", "kind"}
        if unknown:
            raise ValueError(f"unknown filters: {sorted(unknown)}")
        with self._lock:
            items = list(ring.items)
        return [r for r in items if all(getattr(r, k, None) == v for k, v in wanted.items())]


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``fut`` from any thread: at once on its own loop, else through that loop."""
    if fut.done():
        return
    loop = fut.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fut.set_result(value)  # done-callbacks are scheduled, not run here: safe under the lock
    else:
        loop.call_soon_threadsafe(_set_result, fut, value)


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
