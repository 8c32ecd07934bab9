"""One event, once: decode, route, and commit the handler's replies with the "handled" mark.

>>> processor = EventProcessor(settings=s, inbox=inbox, router=router, windows=cache,
...                            outbox=outbox, metrics=metrics, tracer=tracer)  # doctest: +SKIP
>>> again = await processor.run(EventJob(stored))  # None, or when to try again  # doctest: +SKIP

The handler's replies, the conversation's new state (the inbox is the handlers' default
``StateStore``) and the event's done mark are ONE inbox write (it rides the group commit), so
once it landed no retry or restart runs that handler again, and a failed attempt leaves no
state behind. A failed commit is retried with the replies kept in memory, never by running
the handler again. A failing handler is retried with back-off and finally dead-lettered
("handler failed"). An echo that carries one of our idempotency keys settles that reply
(``ReplyOutbox.on_echo``) before the echo event itself is marked done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)
from opentelemetry.trace.propagation import set_span_in_context

from bot.durable_write import WriteAbandoned, until_stored
from bot.events import (
    WINDOW_OPENING_KINDS,
    EventKind,
    InboundEvent,
    StoredPayloadError,
    event_from_storage,
)
from bot.inbox import Inbox, InboxError, NewReply, StoredEvent
from bot.metrics import BotMetrics
from bot.outbox import ReplyOutbox
from bot.outbox_codec import encode_reply, key_from_metadata
from bot.retry import backoff_delay
from bot.routing import DispatchResult, Router
from bot.settings import BotSettings
from bot.state import encode_state
from bot.tracing import span_context_from_traceparent, user_attributes, user_hash_key
from bot.untraced import never_records
from bot.window_cache import WindowCache

T = TypeVar("T")
logger = logging.getLogger("bot.workers")

SPAN_NAME = "process bot.inbound"
_KINDS = {kind.value: kind for kind in EventKind}
_OPENING = frozenset(kind.value for kind in WINDOW_OPENING_KINDS)
_HANDLER_BACKOFF_CAP_SECONDS = 60.0


@dataclass(slots=True, eq=False)
class EventJob:
    """One event between its first attempt and its end (done, dead letter or shutdown)."""

    stored: StoredEvent
    attempts: int = 0
    started: bool = False  # the first attempt began (its queue wait is observed)
    committed: bool = False  # its replies and done mark are stored
    failed_steps: int = 0  # attempts that raised outside the handler (Engine retries them)

    @property
    def order(self) -> tuple[int, int]:
        return (self.stored.timestamp_ms, self.stored.id)


@dataclass(slots=True)
class _Handled:
    event: InboundEvent
    result: DispatchResult
    context: OtelContext  # the consumer span's, for the outbox's send spans


class EventProcessor:
    """Runs one attempt at an event; ``run`` returns ``None`` when the event is finished."""

    def __init__(
        self,
        *,
        settings: BotSettings,
        inbox: Inbox,
        router: Router,
        windows: WindowCache,
        outbox: ReplyOutbox,
        metrics: BotMetrics,
        tracer: Tracer,
        clock: Callable[[], float] = time.time,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._user_hash_key = user_hash_key(settings)
        self._inbox = inbox
        self._router = router
        self._windows = windows
        self._outbox = outbox
        self._metrics = metrics
        self._tracer = tracer
        self._untraced = never_records(tracer)
        self._clock = clock
        self._stopping = stopping
        # Label children resolved once: labels() takes a lock and builds a key every call.
        self._handler_duration = {k: metrics.handler_duration.labels(k) for k in _KINDS}
        self._processed: dict[tuple[str, str], Any] = {}

    async def run(self, job: EventJob) -> float | None:
        """One attempt; returns the wall-clock time of the next one, or None when finished."""
        if self._stopping():
            return None  # stays pending for the next start
        stored = job.stored
        kind = stored.kind if stored.kind in _KINDS else EventKind.UNKNOWN.value
        metrics = self._metrics
        metrics.workers_busy.inc()
        started = self._clock()
        try:
            if not job.started:
                metrics.queue_wait.observe(max(0.0, started - stored.received_at))
                job.started = True
            handled, error = await self._attempt(stored, job.attempts + 1)
        finally:
            metrics.workers_busy.dec()
            self._handler_duration[kind].observe(max(0.0, self._clock() - started))
        if handled is not None:
            state = handled.result.state
            try:
                replies = self._new_replies(stored, handled)
                if state is not None:
                    encode_state(state.data)  # refused here, as the handler's failure
            except Exception as exc:  # e.g. a reply that is not JSON: the handler's bug
                error = exc
            else:
                committed = await self._final_write(
                    stored, lambda: self._inbox.commit_handled(stored.id, replies, state)
                )
                if committed is None:
                    return None  # stopping: the event stays pending, its handler re-runs
                job.committed = True
                self._outbox.add(
                    committed,
                    first_reply_from_ms=handled.event.timestamp_ms,
                    context=handled.context,
                )
                self._finish(kind, "handled" if handled.result.handled else "unhandled")
                return None
        assert error is not None
        job.attempts += 1
        reason = f"{type(error).__name__}: {error}"[:500]
        exhausted = job.attempts >= self._settings.handler_max_attempts
        if exhausted or isinstance(error, StoredPayloadError):
            logger.error(
                "event dead-lettered: %s",
                reason,
                extra={"log_type": "worker", "event_id": stored.id, "event_type": kind},
            )
            await self._final_write(stored, lambda: self._inbox.dead_letter(stored.id, reason))
            metrics.dead_letters.labels(event_type=kind).inc()
            self._finish(kind, "dead_lettered")
            return None
        self._count(kind, "failed")
        metrics.handler_retries.labels(event_type=kind).inc()
        try:
            await self._inbox.record_failure(stored.id, job.attempts, reason)
        except InboxError:  # only the attempt count is lost: the retry happens regardless
            logger.exception("inbox write failed", extra={"log_type": "worker"})
        delay = backoff_delay(
            job.attempts,
            base=self._settings.handler_backoff_base_seconds,
            cap=_HANDLER_BACKOFF_CAP_SECONDS,
        )
        return self._clock() + delay

    # --- commit ---

    def _new_replies(self, stored: StoredEvent, handled: _Handled) -> list[NewReply]:
        replies = handled.result.replies
        if not replies:
            return []
        psid = handled.event.user_id or stored.sender_key
        if not psid:
            self._metrics.replies_dropped.labels(reason="no_recipient").inc(len(replies))
            logger.info(
                "reply dropped: no_recipient",
                extra={"log_type": "outbox", "event_id": stored.id, "replies": len(replies)},
            )
            return []
        page_id = handled.event.page_id
        return [
            # Committed PENDING: the outbox stores SENDING right before the call, so after a
            # crash only the replies that were on the wire wait for their echoes.
            NewReply(n=n, page_id=page_id, psid=psid, body=encode_reply(reply))
            for n, reply in enumerate(replies)
        ]

    async def _final_write(self, stored: StoredEvent, make: Callable[[], Awaitable[T]]) -> T | None:
        """The event's last write (handled or dead letter), retried until it lands, together
        with the user's window time when this event opened the window (one group commit)."""
        window_write = self._touch_window(stored)
        final = self._retrying("commit", make)
        if window_write is None:
            return await final
        # Queued in the same loop iteration: both ride one group commit.
        window, result = await asyncio.gather(window_write, final, return_exceptions=True)
        if isinstance(window, Exception):  # the cache still knows the window
            logger.warning("window write failed: %s", window, extra={"log_type": "worker"})
        if isinstance(result, BaseException):
            raise result
        return result

    async def _retrying(self, write: str, make: Callable[[], Awaitable[T]]) -> T | None:
        """Run an inbox write until it lands (``None`` if the engine stops meanwhile)."""
        try:
            return await until_stored(
                make, what=write, metrics=self._metrics, stopping=self._stopping
            )
        except WriteAbandoned:
            return None

    def _touch_window(self, stored: StoredEvent) -> Awaitable[None] | None:
        # The stored row has all it takes: for window-opening kinds the sender is the user.
        if stored.sender_key and stored.timestamp_ms and stored.kind in _OPENING:
            return self._windows.touch(stored.page_id, stored.sender_key, stored.timestamp_ms)
        return None

    def _finish(self, kind: str, outcome: str) -> None:
        self._count(kind, outcome)
        self._metrics.last_processed.set(self._clock())

    def _count(self, kind: str, outcome: str) -> None:
        child = self._processed.get((kind, outcome))
        if child is None:
            child = self._processed[(kind, outcome)] = self._metrics.events_processed.labels(
                event_type=kind, outcome=outcome
            )
        child.inc()

    # --- the handler, inside the CONSUMER span ---

    async def _attempt(
        self, stored: StoredEvent, attempt: int
    ) -> tuple[_Handled | None, BaseException | None]:
        parent, producer = _producer_context(stored.traceparent)
        if self._untraced:
            # No span can be recorded: the stored context alone keeps the trace id in logs
            # and in the Send API's outgoing traceparent.
            span: Span = NonRecordingSpan(producer) if producer is not None else INVALID_SPAN
            context = set_span_in_context(span, parent)
            token = otel_context.attach(context)
            try:
                return await self._try(stored, span, context)
            finally:
                otel_context.detach(token)
        attributes: dict[str, Any] = {
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "bot.inbound",
            "messaging.message.id": str(stored.id),
            "bot.event_type": stored.kind,
            "bot.page_id": stored.page_id,
            **user_attributes(stored.sender_key, hash_key=self._user_hash_key),
            "bot.attempt": attempt,
        }
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            context=parent,
            kind=SpanKind.CONSUMER,
            links=[Link(producer)] if producer is not None else [],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            return await self._try(stored, span, otel_context.get_current())

    async def _try(
        self, stored: StoredEvent, span: Span, context: OtelContext
    ) -> tuple[_Handled | None, BaseException | None]:
        try:
            event = event_from_storage(stored)
            if span.is_recording() and event.mid:
                span.set_attribute("bot.mid", event.mid)
            # The inbox is the state store of routes without their own: their state is
            # committed with the replies (DispatchResult.state), never saved before.
            result = await self._router.dispatch(event, state_store=self._inbox)
            if event.kind is EventKind.ECHO:
                self._metrics.echoes_ignored.inc()
                reply_id = key_from_metadata(event.message.get("metadata"))
                if reply_id is not None:
                    await self._outbox.on_echo(reply_id)
            return _Handled(event, result, context), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            if isinstance(exc, InboxError):
                # The store failed (a state read or save), not the handler: the engine backs
                # off and tries again without using up the handler's attempts, so a store
                # that is slow or down for a while dead-letters nothing.
                raise
            return None, exc


def _producer_context(traceparent: str | None) -> tuple[OtelContext, Any]:
    """The stored producer span as a parent context (and its span context for the link).

    Always an explicit context, never the current one: a worker must not inherit a span.
    """
    producer = span_context_from_traceparent(traceparent)
    if producer is None:
        return OtelContext(), None
    return set_span_in_context(NonRecordingSpan(producer), OtelContext()), producer
