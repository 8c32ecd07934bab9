"""The worker pool: per-sender ordering, handler retries, dead letters, replies via the Send API.

>>> pool = WorkerPool(settings=s, inbox=inbox, router=router, send_api=api,
...                   metrics=metrics, tracer=provider.get_tracer("bot.workers"))  # doctest: +SKIP
>>> await pool.start()          # loads inbox.pending()                    # doctest: +SKIP
>>> pool.submit(stored_events)  # right after inbox.enqueue() returned     # doctest: +SKIP
>>> await pool.stop(grace=10)   # unfinished events stay pending            # doctest: +SKIP

The schedule lives in memory: one heap per sender ordered by ``(timestamp_ms, id)``, one event
at a time per sender, up to ``WORKER_CONCURRENCY`` senders at once. The inbox is only written
to (progress, done, dead letters); it is read at start-up, for replays, and for a window time
the in-memory cache cannot vouch for.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bot.events import WINDOW_OPENING_KINDS, EventKind, InboundEvent
from bot.inbox import Inbox, StoredEvent
from bot.metrics import BotMetrics
from bot.replies import ReplySender
from bot.retry import backoff_delay
from bot.routing import Router
from bot.send_api import SendApi
from bot.settings import BotSettings
from bot.window_cache import WindowCache

logger = logging.getLogger("bot.workers")

SPAN_NAME = "process bot.inbound"
_KINDS = {kind.value: kind for kind in EventKind}
_PROPAGATOR = TraceContextTextMapPropagator()
_HANDLER_BACKOFF_CAP_SECONDS = 60.0
_RECENT_DONE_LIMIT = 10_000


class BadPayloadError(ValueError):
    """A stored event whose payload is not a messaging object: retrying cannot help."""


@dataclass(slots=True, eq=False)
class _Sender:
    key: str
    heap: list[tuple[int, int, StoredEvent]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    busy: bool = False


@dataclass(slots=True)
class _Progress:
    """How far one event got; survives a failed attempt so a retry never re-sends."""

    replies_done: int
    replied: bool  # a reply of this event already went out (time to first reply is taken)


class WorkerPool:
    """Processes stored events; see the module docstring and docs/architecture.md.

    ``tracer`` is an OpenTelemetry ``Tracer`` (a ``TracerProvider`` is accepted too and asked for
    one); ``None`` uses the global provider. ``clock`` returns wall-clock seconds (the same clock
    as ``StoredEvent.received_at``); ``replay_poll_seconds`` is how often CLI replays are picked up.
    """

    def __init__(
        self,
        *,
        settings: BotSettings,
        inbox: Inbox,
        router: Router,
        send_api: SendApi,
        metrics: BotMetrics,
        tracer: Tracer | trace.TracerProvider | None = None,
        replay_poll_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._router = router
        self._metrics = metrics
        if tracer is None:
            tracer = trace.get_tracer("bot.workers")
        elif isinstance(tracer, trace.TracerProvider):
            tracer = tracer.get_tracer("bot.workers")
        self._tracer: Tracer = tracer
        self._replay_poll_seconds = replay_poll_seconds
        self._clock = clock
        self._hold = settings.ordering_window_ms / 1000
        self._windows = WindowCache(inbox)
        self._replies = ReplySender(
            settings=settings,
            windows=self._windows,
            send_api=send_api,
            metrics=metrics,
            clock=clock,
        )
        self._senders: dict[str, _Sender] = {}
        self._known: set[int] = set()  # scheduled or in flight
        self._recent_done: OrderedDict[int, None] = OrderedDict()
        self._slots = asyncio.Semaphore(max(1, settings.worker_concurrency))
        self._stop_requested = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False
        self._poll_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Load every pending event from the inbox and start scheduling."""
        if self._running:
            return
        self._stop_requested.clear()
        # Running before the read: events the edge submits meanwhile are not turned away.
        self._running = True
        try:
            pending = await self._inbox.pending()
        except BaseException:
            self._running = False
            raise
        self.submit(pending)
        self._poll_task = asyncio.get_running_loop().create_task(self._poll_replays())

    def submit(self, events: Iterable[StoredEvent | None]) -> None:
        """Schedule stored events (``None`` entries, i.e. duplicates, are skipped). Never blocks."""
        if not self._running:
            return  # they are durable: the next start() loads them
        for event in events:
            if event is None or event.id in self._known or event.id in self._recent_done:
                continue
            self._known.add(event.id)
            self._idle.clear()
            # Events without a conversation have nothing to be ordered against.
            key = f"{event.page_id}|{event.sender_key}" if event.sender_key else f"#{event.id}"
            sender = self._senders.get(key)
            if sender is None:
                sender = self._senders[key] = _Sender(key)
            heapq.heappush(sender.heap, (event.timestamp_ms, event.id, event))
            if sender.task is None:
                sender.task = asyncio.get_running_loop().create_task(self._run_sender(sender))

    async def join(self) -> None:
        """Wait until every submitted event is finished (done or dead-lettered)."""
        await self._idle.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give in-flight events ``grace`` seconds, leave the rest pending."""
        if not self._running:
            return
        self._running = False
        self._stop_requested.set()
        grace = self._settings.shutdown_grace_seconds if grace is None else grace
        tasks = [s.task for s in self._senders.values() if s.task is not None]
        busy = [s.task for s in self._senders.values() if s.task is not None and s.busy]
        for task in set(tasks) - set(busy):
            task.cancel()
        if self._poll_task is not None:
            self._poll_task.cancel()
            tasks.append(self._poll_task)
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._senders.clear()
        self._known.clear()
        self._idle.set()
        self._poll_task = None

    # --- scheduling ---

    async def _run_sender(self, sender: _Sender) -> None:
        try:
            while sender.heap and not self._stop_requested.is_set():
                event = sender.heap[0][2]
                # Hold the head until its ordering window has passed; an earlier event
                # arriving meanwhile becomes the new head and is checked on the next turn.
                wait = event.received_at + self._hold - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                heapq.heappop(sender.heap)
                sender.busy = True
                try:
                    await self._process(event)
                finally:
                    sender.busy = False
                    self._forget(event.id)
        finally:
            sender.task = None
            if not sender.heap and self._senders.get(sender.key) is sender:
                del self._senders[sender.key]

    def _forget(self, event_id: int) -> None:
        self._known.discard(event_id)
        if not self._known:
            self._idle.set()

    def _remember_done(self, event_id: int) -> None:
        self._recent_done[event_id] = None
        if len(self._recent_done) > _RECENT_DONE_LIMIT:
            self._recent_done.popitem(last=False)

    async def _poll_replays(self) -> None:
        # The inbox gauges are refreshed at scrape time by the edge, not here.
        while True:
            await asyncio.sleep(self._replay_poll_seconds)
            try:
                replayed = await self._inbox.take_replayed()
            except Exception:
                logger.exception("inbox replay poll failed", extra={"log_type": "worker"})
                continue
            self.submit(replayed)

    # --- one event ---

    async def _process(self, stored: StoredEvent) -> None:
        """Run one event to done or dead letter, retrying handler failures with back-off."""
        kind = stored.kind if stored.kind in _KINDS else EventKind.UNKNOWN.value
        progress = _Progress(stored.replies_sent, replied=stored.replies_sent > 0)
        attempts = stored.attempts
        first = True
        while True:
            async with self._slots:
                if self._stop_requested.is_set():
                    return  # stays pending for the next start
                self._metrics.workers_busy.inc()
                started = self._clock()
                try:
                    if first:
                        self._metrics.queue_wait.observe(max(0.0, started - stored.received_at))
                        first = False
                    handled, error = await self._attempt(stored, attempts + 1, progress)
                finally:
                    self._metrics.workers_busy.dec()
                    self._metrics.handler_duration.labels(event_type=kind).observe(
                        max(0.0, self._clock() - started)
                    )
            if error is None:
                outcome = "handled" if handled else "unhandled"
                await self._settle(stored, kind, outcome, None)
                return
            attempts += 1
            reason = f"{type(error).__name__}: {error}"[:500]
            exhausted = attempts >= self._settings.handler_max_attempts
            if exhausted or isinstance(error, BadPayloadError):
                await self._settle(stored, kind, "dead_lettered", reason)
                return
            self._metrics.events_processed.labels(event_type=kind, outcome="failed").inc()
            self._metrics.handler_retries.labels(event_type=kind).inc()
            await self._safe(self._inbox.record_failure(stored.id, attempts, reason))
            delay = backoff_delay(
                attempts,
                base=self._settings.handler_backoff_base_seconds,
                cap=_HANDLER_BACKOFF_CAP_SECONDS,
            )
            try:
                await asyncio.wait_for(self._stop_requested.wait(), timeout=delay)
                return  # stopping: leave it pending rather than hold shutdown up
            except TimeoutError:
                pass

    async def _settle(
        self, stored: StoredEvent, kind: str, outcome: str, error: str | None
    ) -> None:
        if error is None:
            await self._safe(self._inbox.mark_done(stored.id))
            self._remember_done(stored.id)
        else:
            logger.error(
                "event dead-lettered: %s",
                error,
                extra={"log_type": "worker", "event_id": stored.id, "event_type": kind},
            )
            await self._safe(self._inbox.dead_letter(stored.id, error))
            self._metrics.dead_letters.labels(event_type=kind).inc()
        self._metrics.events_processed.labels(event_type=kind, outcome=outcome).inc()
        self._metrics.last_processed.set(self._clock())

    async def _safe(self, write: Awaitable[object]) -> None:
        # An inbox write that fails leaves the event pending: it is redone after a restart
        # and the recorded progress keeps replies from going out twice.
        try:
            await write
        except Exception:
            logger.exception("inbox write failed", extra={"log_type": "worker"})

    async def _attempt(
        self, stored: StoredEvent, attempt: int, progress: _Progress
    ) -> tuple[bool, BaseException | None]:
        """One try at an event inside its CONSUMER span; returns (handled, error)."""
        parent = _producer_context(stored.traceparent)
        producer = trace.get_current_span(parent).get_span_context()
        links = [Link(producer)] if producer.is_valid else []
        attributes: dict[str, Any] = {
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "bot.inbound",
            "messaging.message.id": str(stored.id),
            "bot.event_type": stored.kind,
            "bot.page_id": stored.page_id,
            "bot.psid": stored.sender_key,
            "bot.attempt": attempt,
        }
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                event = _to_inbound(stored)
                if event.mid:
                    span.set_attribute("bot.mid", event.mid)
                return await self._handle(event, stored, progress, span), None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                return False, exc

    async def _handle(
        self, event: InboundEvent, stored: StoredEvent, progress: _Progress, span: Span
    ) -> bool:
        psid = event.user_id or stored.sender_key or None
        window_write: asyncio.Future[None] | None = None
        if psid and event.kind in WINDOW_OPENING_KINDS and event.timestamp_ms:
            write = self._windows.touch(event.page_id, psid, event.timestamp_ms)
            # The cache already knows the window; the commit overlaps the handler and send.
            window_write = asyncio.ensure_future(write) if write is not None else None
        try:
            result = await self._router.dispatch(event)
            if event.kind is EventKind.ECHO:
                self._metrics.echoes_ignored.inc()
                return result.handled
            replies = result.replies
            for index in range(progress.replies_done, len(replies)):
                outcome = await self._replies.deliver(event.page_id, psid, replies[index])
                progress.replies_done = index + 1
                if outcome.sent and not progress.replied:
                    progress.replied = True
                    self._observe_first_reply(event, span)
                # After the last reply mark_done follows and covers it: one commit less.
                if outcome.called and index + 1 < len(replies):
                    await self._inbox.record_reply_sent(stored.id, progress.replies_done)
            return result.handled
        finally:
            if window_write is not None:
                await self._safe(window_write)

    def _observe_first_reply(self, event: InboundEvent, span: Span) -> None:
        if not event.timestamp_ms:
            return  # no user timestamp to measure from
        elapsed = max(0.0, self._clock() - event.timestamp_ms / 1000)
        context = span.get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            exemplar = {"trace_id": format(context.trace_id, "032x")}
            self._metrics.time_to_first_reply.observe(elapsed, exemplar=exemplar)
        else:
            self._metrics.time_to_first_reply.observe(elapsed)


def _producer_context(traceparent: str | None) -> OtelContext:
    # Always an explicit context: the task may have inherited the webhook's server span.
    if not traceparent:
        return OtelContext()
    return _PROPAGATOR.extract({"traceparent": traceparent}, context=OtelContext())


def _to_inbound(stored: StoredEvent) -> InboundEvent:
    try:
        raw = json.loads(stored.payload)
    except ValueError as exc:
        raise BadPayloadError("payload is not JSON") from exc
    if not isinstance(raw, dict):
        raise BadPayloadError("payload is not a JSON object")
    kind = _KINDS.get(stored.kind, EventKind.UNKNOWN)
    return InboundEvent(
        page_id=stored.page_id,
        kind=kind,
        sender_id=_party(raw, "sender"),
        recipient_id=_party(raw, "recipient"),
        timestamp_ms=stored.timestamp_ms,
        dedup_key=stored.dedup_key,
        raw=raw,
        standby=kind is EventKind.STANDBY,
    )


def _party(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if not isinstance(value, dict):
        return None
    ident = value.get("id") or value.get("user_ref")
    if isinstance(ident, bool):
        return None
    return str(ident) if isinstance(ident, str | int) and ident != "" else None
