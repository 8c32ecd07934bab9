"""What happened on the platform: user actions, webhook deliveries, Send API calls, alerts.

Bounded (``retention`` records per kind; the oldest are dropped and counted), filterable by
page, PSID and mid, and awaitable: tests and the control API's long-polls wait on futures that
the recording call resolves, never on a polling loop. Records are stamped with the platform
clock; waiter timeouts are real seconds.

Reply attribution: a successful Send API *message* to a PSID answers that PSID's oldest
unanswered action (time-to-first-reply is observed then); with none unanswered it is an
"extra" reply, which is how duplicate replies show up.

>>> journal = Journal(clock, metrics)                                  # doctest: +SKIP
>>> action = journal.record_action("6543210987654321", "104501234567890", "m_1", "text")
>>> # ... the bot answers via the Send API, which calls journal.record_send(...)
>>> result = await journal.wait_reply("6543210987654321", "m_1", timeout=5)
>>> result.time_to_reply_seconds, result.ack_latency_seconds
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from mock_meta.clock import Clock
from mock_meta.journal_records import (
    FINISHED_STATES,
    REDACTED,
    ActionRecord,
    AlertRecord,
    AttemptRecord,
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
    "AlertRecord",
    "AttemptRecord",
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


class Journal:
    """Thread-safe recorder with async waiters (waiters must be awaited on one event loop)."""

    def __init__(
        self, clock: Clock, metrics: MockMetrics, *, retention: int = DEFAULT_RETENTION
    ) -> None:
        if retention < 1:
            raise ValueError("retention must be >= 1")
        self._clock = clock
        self._metrics = metrics
        self._retention = retention
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
        self._unanswered: dict[str, deque[ActionRecord]] = {}
        self._deliveries_by_mid: dict[str, list[DeliveryRecord]] = {}
        self._sends_by_psid: dict[str, deque[SendRecord]] = {}
        self._send_counts: Counter[tuple[str, bool]] = Counter()
        self._send_codes: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        self._reply_waiters: dict[str, list[tuple[int, asyncio.Future[SendRecord]]]] = {}
        self._delivery_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._send_waiters: dict[str, list[tuple[int, bool, asyncio.Future[None]]]] = {}

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
        """Record a user action; record it BEFORE enqueueing its delivery (waiters rely on it)."""
        with self._lock:
            record = ActionRecord(
                self._next_seq(), self._clock.now(), psid, page_id, mid, event_type, expects_reply
            )
            self._totals["actions"] += 1
            self._keep(self._actions, record, self._forget_action)
            if mid is not None:
                self._actions_by_mid[mid] = record
            if expects_reply:
                self._unanswered.setdefault(psid, deque()).append(record)
        self._metrics.user_actions.labels(event_type=event_type).inc()
        self._notify(record)
        return record

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
        self._notify(record)
        return record

    def delivery_attempted(self, record: DeliveryRecord, attempt: AttemptRecord) -> None:
        with self._lock:
            record.attempts.append(attempt)
            if attempt.attempt > 1 and not attempt.duplicate:
                self._totals["retries"] += 1
            if attempt.outcome == "success" and record.ack_latency_seconds is None:
                record.ack_latency_seconds = attempt.latency_seconds

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
            record.state = state
            record.reason = reason
            if state == "delivered":
                record.delivered_at = self._clock.now()
            if record.mid is not None and self._settled(record.mid) is not None:
                for fut in self._delivery_waiters.pop(record.mid, []):
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
        """Record a Send API call; a successful message is attributed to the oldest unanswered
        action of ``psid`` (or counted as an extra reply).

        ``request`` and ``response`` are stored as given, top-level secrets replaced
        (:func:`redact_top_level`): callers must not change them afterwards.
        """
        stored_request = redact_top_level(request)
        stored_response = redact_top_level(response) if type(response) is dict else response
        with self._lock:
            now = self._clock.now()
            record = SendRecord(
                self._next_seq(),
                now,
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
            self._keep(self._sends, record, None)
            ttr = None
            if psid is not None:
                self._send_counts[(psid, False)] += 1
                per_psid = self._sends_by_psid.setdefault(psid, deque(maxlen=_PER_PSID_SENDS))
                per_psid.append(record)
                if record.is_reply:
                    self._send_counts[(psid, True)] += 1
                    ttr = self._attribute(record, psid, now)
                    for _anchor, fut in self._reply_waiters.pop(psid, []):
                        _resolve(fut, record)
                self._wake_send_waiters(psid)
        if ttr is not None:
            self._metrics.time_to_first_reply.observe(ttr)
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
        return self._actions_by_mid.get(mid)

    @property
    def dropped(self) -> int:
        rings = (self._actions, self._deliveries, self._sends, self._alerts, self._subscriptions)
        return sum(r.dropped for r in rings)

    def summary(self) -> dict[str, Any]:
        """Counts since the last reset (deliveries by state over the retained records)."""
        with self._lock:
            states = Counter(d.state for d in self._deliveries.items)
            return {
                "actions": self._totals["actions"],
                "answered": self._totals["answered"],
                "unanswered": sum(len(q) for q in self._unanswered.values()),
                "extra_replies": self._totals["extra_replies"],
                "deliveries": dict(states),
                "sends": self._totals["sends"],
                "sends_by_error_code": dict(self._send_codes),
                "retries": self._totals["retries"],
                "journal_dropped": self.dropped,
            }

    # ---- waiters -------------------------------------------------------------------------
    async def wait_reply(
        self,
        psid: str,
        mid: str,
        timeout: float,  # noqa: ASYNC109 - the long-polls pass real seconds
    ) -> ReplyResult | None:
        """The bot's first message to ``psid`` recorded after action ``mid`` (None on timeout).

        Also reports the ack latency of the delivery that carried ``mid`` (waiting, within
        the same timeout, for that delivery's 200 when the reply overtook it).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._lock:
            action = self._actions_by_mid.get(mid)
            anchor = action.seq if action is not None else self._last_seq
            reply = self._first_reply_after(psid, anchor)
            fut: asyncio.Future[SendRecord] | None = None
            if reply is None:
                fut = loop.create_future()
                self._reply_waiters.setdefault(psid, []).append((anchor, fut))
        if fut is not None:
            try:
                reply = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                return None
            finally:
                self._discard_reply_waiter(psid, fut)
        assert reply is not None
        started = action.at if action is not None else reply.at
        delivery = self._settled(mid)
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
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[SendRecord] = loop.create_future()
        with self._lock:
            self._reply_waiters.setdefault(psid, []).append((self._last_seq, fut))
        try:
            return await asyncio.wait_for(fut, within)
        except TimeoutError:
            return None
        finally:
            self._discard_reply_waiter(psid, fut)

    async def wait_delivery(self, mid: str, timeout: float) -> DeliveryRecord | None:  # noqa: ASYNC109
        """The delivery carrying ``mid`` once it is settled (delivered or given up)."""
        with self._lock:
            settled = self._settled(mid)
            if settled is not None:
                return settled
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._delivery_waiters.setdefault(mid, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            with self._lock:
                waiters = self._delivery_waiters.get(mid, [])
                if fut in waiters:
                    waiters.remove(fut)
        return self._settled(mid)

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
            fut: asyncio.Future[None] | None = None
            if self._send_counts[(psid, messages_only)] < count:
                fut = asyncio.get_running_loop().create_future()
                self._send_waiters.setdefault(psid, []).append((count, messages_only, fut))
        if fut is not None:
            try:
                await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    waiters = self._send_waiters.get(psid, [])
                    self._send_waiters[psid] = [w for w in waiters if w[2] is not fut]
        with self._lock:
            recent = list(self._sends_by_psid.get(psid, ()))
        return [s for s in recent if s.is_reply] if messages_only else recent

    # ---- internals -----------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._last_seq = next(self._seq)
        return self._last_seq

    def _keep(self, ring: _Ring[R], record: R, forget: Callable[[R], None] | None) -> None:
        evicted = ring.append(record)
        if evicted is not None:
            self._metrics.journal_dropped.inc()
            if forget is not None:
                forget(evicted)

    def _forget_action(self, record: ActionRecord) -> None:
        if record.mid is not None and self._actions_by_mid.get(record.mid) is record:
            del self._actions_by_mid[record.mid]
        # The oldest retained action is the oldest of its PSID, so it sits at the queue's head.
        queue = self._unanswered.get(record.psid)
        if queue and queue[0] is record:
            queue.popleft()
            if not queue:
                del self._unanswered[record.psid]

    def _forget_delivery(self, record: DeliveryRecord) -> None:
        if record.mid is None:
            return
        records = self._deliveries_by_mid.get(record.mid, [])
        if record in records:
            records.remove(record)
        if not records:
            self._deliveries_by_mid.pop(record.mid, None)

    def _attribute(self, record: SendRecord, psid: str, now: float) -> float | None:
        queue = self._unanswered.get(psid)
        if not queue:
            record.extra = True
            self._totals["extra_replies"] += 1
            return None
        action = queue.popleft()
        if not queue:
            del self._unanswered[psid]
        action.answered_by = record.message_id
        action.answered_at = now
        record.answers_mid = action.mid
        record.time_to_reply_seconds = max(0.0, now - action.at)
        self._totals["answered"] += 1
        return record.time_to_reply_seconds

    def _first_reply_after(self, psid: str, anchor: int) -> SendRecord | None:
        for send in self._sends_by_psid.get(psid, ()):
            if send.seq > anchor and send.is_reply:
                return send
        return None

    def _wake_send_waiters(self, psid: str) -> None:
        waiters = self._send_waiters.get(psid)
        if not waiters:
            return
        remaining = []
        for count, messages_only, fut in waiters:
            if self._send_counts[(psid, messages_only)] >= count:
                _resolve(fut, None)
            else:
                remaining.append((count, messages_only, fut))
        self._send_waiters[psid] = remaining

    def _discard_reply_waiter(self, psid: str, fut: asyncio.Future[SendRecord]) -> None:
        with self._lock:
            waiters = self._reply_waiters.get(psid)
            if waiters:
                self._reply_waiters[psid] = [w for w in waiters if w[1] is not fut]
                if not self._reply_waiters[psid]:
                    del self._reply_waiters[psid]

    def _settled(self, mid: str) -> DeliveryRecord | None:
        """All deliveries carrying ``mid`` finished: the first delivered one (or the first)."""
        records = self._deliveries_by_mid.get(mid)
        if not records or not all(r.finished for r in records):
            return None
        return next((r for r in records if r.state == "delivered"), records[0])

    def _first_delivery(self, mid: str) -> DeliveryRecord | None:
        records = self._deliveries_by_mid.get(mid)
        return records[0] if records else None

    @staticmethod
    def _filter(ring: _Ring[Any], filters: dict[str, str | None]) -> list[Any]:
        wanted = {k: v for k, v in filters.items() if v is not None}
        unknown = set(wanted) - {"page_id", "psid", "mid", "app_id", "state", "kind"}
        if unknown:
            raise ValueError(f"unknown filters: {sorted(unknown)}")
        items = list(ring.items)
        return [r for r in items if all(getattr(r, k, None) == v for k, v in wanted.items())]


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    # Recording may happen on a worker thread (sync route handlers); resolve on the loop.
    if not fut.done():
        fut.get_loop().call_soon_threadsafe(_set_result, fut, value)


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
