"""The worker pool: per-sender ordering, handler retries, dead letters, replies via the Send API.

>>> pool = WorkerPool(settings=s, inbox=inbox, router=router, send_api=api,
...                   metrics=metrics, tracer=provider.get_tracer("bot.workers"))  # doctest: +SKIP
>>> await pool.start()          # loads inbox.pending()                    # doctest: +SKIP
>>> pool.submit(stored_events)  # right after inbox.enqueue() returned     # doctest: +SKIP
>>> await pool.stop(grace=10)   # unfinished events stay pending            # doctest: +SKIP

The schedule lives in memory: one heap per sender ordered by ``(timestamp_ms, id)``, one event
at a time per sender. A fixed set of ``WORKER_CONCURRENCY`` worker tasks takes senders whose
next event is due from one ready queue; a single timer covers every event still inside its
ordering window or waiting out a retry back-off, so an event costs no task or timer of its own.
How many events are in progress at once adapts to the event loop's lag (``bot.worker_limit``):
the acks share this loop and must not queue behind the workers.

The inbox is only written to (progress, done, dead letters); it is read at start-up, for
replays, and for a window time the in-memory cache cannot vouch for.

Durability. ``mark_done`` and window writes are *write-behind* through the inbox's
``*_nowait`` methods: the write joins the next group commit at once,
but the sender's next event does not wait for that commit. A crash between a reply and the
commit of its done mark replays the event and sends that reply again: the same window an
awaited mark has (the commit itself), only no longer serialised per sender. Progress between
several replies of one event is awaited before the next reply goes out, so a replay never
repeats a reply recorded as sent. ``join()`` and ``stop()`` wait for write-behind writes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
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

from bot.events import WINDOW_OPENING_KINDS, EventKind, InboundEvent
from bot.inbox import Inbox, StoredEvent
from bot.metrics import BotMetrics
from bot.replies import ReplySender
from bot.reply_slo import ReplySlo
from bot.retry import backoff_delay
from bot.routing import Router
from bot.send_api import SendApi
from bot.settings import BotSettings
from bot.tracing import span_context_from_traceparent, user_attributes, user_hash_key
from bot.untraced import never_records
from bot.window_cache import WindowCache
from bot.worker_limit import DEFAULT_LAG_TARGET_SECONDS, AdaptiveLimit, LagProbe

logger = logging.getLogger("bot.workers")

SPAN_NAME = "process bot.inbound"
_KINDS = {kind.value: kind for kind in EventKind}
_HANDLER_BACKOFF_CAP_SECONDS = 60.0
_RECENT_DONE_LIMIT = 10_000
# Loop timers fire with millisecond resolution: an event due within this is due now.
_DUE_SLACK_SECONDS = 0.001

# Where a sender is in the schedule.
_IDLE, _WAITING, _READY, _BUSY = range(4)


class BadPayloadError(ValueError):
    """A stored event whose payload is not a messaging object: retrying cannot help."""


@dataclass(slots=True)
class _Progress:
    """How far one event got; survives a failed attempt so a retry never re-sends."""

    replies_done: int
    replied: bool  # a reply of this event already went out (time to first reply is taken)


@dataclass(slots=True, eq=False)
class _Job:
    """One event between its first attempt and its end (done, dead letter or shutdown)."""

    stored: StoredEvent
    kind: str
    attempts: int
    progress: _Progress
    started: bool = False  # the first attempt began (its queue wait is observed)


@dataclass(slots=True, eq=False)
class _Sender:
    key: str
    heap: list[tuple[int, int, StoredEvent]] = field(default_factory=list)
    retry: _Job | None = None  # an event in back-off still blocks the sender's later events
    retry_at: float = 0.0
    state: int = _IDLE
    due: float = 0.0  # while _WAITING: when the timer looks at this sender again


@dataclass(slots=True, eq=False)
class _Worker:
    task: asyncio.Task[None] | None = None
    busy: bool = False


class WorkerPool:
    """Processes stored events; see the module docstring and docs/architecture.md.

    ``tracer`` is an OpenTelemetry ``Tracer`` (a ``TracerProvider`` is accepted too and asked for
    one); ``None`` uses the global provider. ``clock`` returns wall-clock seconds (the same clock
    as ``StoredEvent.received_at``); ``replay_poll_seconds`` is how often CLI replays are picked up.
    ``lag_target`` is the event-loop lag above which fewer events run at once (``None``: always
    ``WORKER_CONCURRENCY``); ``note_ack`` feeds the other signal, the acks' durations.
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
        lag_target: float | None = DEFAULT_LAG_TARGET_SECONDS,
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
        self._untraced = never_records(tracer)
        self._replay_poll_seconds = replay_poll_seconds
        self._clock = clock
        self._hold = settings.ordering_window_ms / 1000
        self._windows = WindowCache(inbox)
        self._reply_slo = ReplySlo(
            metrics.reply_slo_events, slo_seconds=settings.reply_slo_seconds, clock=clock
        )
        self._replies = ReplySender(
            settings=settings,
            windows=self._windows,
            send_api=send_api,
            metrics=metrics,
            clock=clock,
        )
        concurrency = max(1, settings.worker_concurrency)
        self._limit = AdaptiveLimit(concurrency, lag_target=lag_target or 0.0)
        self._probe = LagProbe(self._on_lag) if lag_target else None
        self._slowest_ack, self._fastest_ack = 0.0, math.inf  # since the last probe tick
        self._worker_count = concurrency
        self._workers: list[_Worker] = []
        self._senders: dict[str, _Sender] = {}
        self._ready: deque[_Sender] = deque()
        self._parked: deque[asyncio.Future[None]] = deque()
        self._waking = 0  # parked workers woken that have not resumed yet
        self._active = 0  # workers running an event
        self._timers: list[tuple[float, int, _Sender]] = []
        self._timer_seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._known: set[int] = set()  # scheduled or in flight
        self._recent_done: OrderedDict[int, None] = OrderedDict()
        self._writes: set[asyncio.Future[Any]] = set()  # write-behind, not committed yet
        self._stop_requested = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False
        self._poll_task: asyncio.Task[None] | None = None
        # Label children resolved once: labels() takes a lock and builds a key every call.
        self._handler_duration = {k: metrics.handler_duration.labels(k) for k in _KINDS}
        self._processed: dict[tuple[str, str], Any] = {}

    @property
    def running(self) -> bool:
        return self._running

    @property
    def limit(self) -> int:
        """Events allowed in progress right now (lowered while the event loop lags)."""
        return self._limit.value

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
        loop = asyncio.get_running_loop()
        self._limit.value = self._limit.ceiling
        for index in range(self._worker_count):
            worker = _Worker()
            worker.task = loop.create_task(self._work(worker), name=f"bot-worker-{index}")
            self._workers.append(worker)
        if self._probe is not None:
            self._probe.start()
        self.submit(pending)
        self._poll_task = loop.create_task(self._poll_replays())

    def submit(self, events: Iterable[StoredEvent | None]) -> None:
        """Schedule stored events (``None`` entries, i.e. duplicates, are skipped). Never blocks."""
        if not self._running:
            return  # they are durable: the next start() loads them
        now = self._clock()
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
            self._schedule(sender, now)
        self._wake()

    async def join(self) -> None:
        """Wait until every submitted event is finished and its inbox writes have landed."""
        await self._idle.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give in-flight events ``grace`` seconds, leave the rest pending."""
        if not self._running:
            return
        self._running = False
        self._stop_requested.set()
        grace = self._settings.shutdown_grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        if self._probe is not None:
            self._probe.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [w.task for w in self._workers if w.task is not None]
        busy = [w.task for w in self._workers if w.task is not None and w.busy]
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
        if self._writes:  # done marks of the events just finished
            await asyncio.wait(set(self._writes), timeout=max(0.0, deadline - time.monotonic()))
        self._workers.clear()
        self._senders.clear()
        self._ready.clear()
        self._parked.clear()
        self._timers.clear()
        self._known.clear()
        self._waking = self._active = 0
        self._idle.set()
        self._poll_task = None

    # --- scheduling ---

    def _due(self, sender: _Sender) -> float:
        if sender.retry is not None:
            return sender.retry_at
        # Hold the head for its ordering window; an earlier event arriving meanwhile
        # becomes the new head and is held in turn.
        return sender.heap[0][2].received_at + self._hold

    def _schedule(self, sender: _Sender, now: float) -> None:
        """Put a sender that has work in the ready queue, or under the timer until it is due."""
        state = sender.state
        if state == _BUSY or state == _READY:
            return  # a busy sender is rescheduled when it finishes; ready is checked on take
        due = self._due(sender)
        if state == _WAITING and due >= sender.due:
            return
        if due <= now + _DUE_SLACK_SECONDS:
            sender.state = _READY
            self._ready.append(sender)
        else:
            sender.state, sender.due = _WAITING, due
            heapq.heappush(self._timers, (due, next(self._timer_seq), sender))
            if self._timer is None or due < self._timer_due:
                self._arm_timer(due, now)

    def _arm_timer(self, due: float, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock()
        timers = self._timers
        while timers and timers[0][0] <= now + _DUE_SLACK_SECONDS:
            due, _, sender = heapq.heappop(timers)
            if sender.state == _WAITING and sender.due == due:  # else a stale entry
                sender.state = _IDLE
                self._schedule(sender, now)
        if timers and self._timer is None:
            self._arm_timer(timers[0][0], now)
        self._wake()

    def _wake(self) -> None:
        """Wake as many parked workers as there are ready senders and room under the limit."""
        room = self._limit.value - self._active - self._waking
        ready = len(self._ready) - self._waking
        while room > 0 and ready > 0 and self._parked:
            waiter = self._parked.popleft()
            if waiter.done():
                continue
            waiter.set_result(None)
            self._waking += 1
            room -= 1
            ready -= 1

    def _take(self) -> _Sender | None:
        """The next sender a worker may run now, or None (nothing due, or at the limit)."""
        if self._active >= self._limit.value or not self._running:
            return None
        ready = self._ready
        now = 0.0
        while ready:
            sender = ready.popleft()
            if now == 0.0:
                now = self._clock()
            if self._due(sender) > now + _DUE_SLACK_SECONDS:
                sender.state = _IDLE  # a later-received event became its head: hold it
                self._schedule(sender, now)
                continue
            sender.state = _BUSY
            return sender
        return None

    def note_ack(self, seconds: float) -> None:
        """The edge reports each ack's duration: slow acks make the workers back off."""
        if seconds > self._slowest_ack:
            self._slowest_ack = seconds
        if seconds < self._fastest_ack:
            self._fastest_ack = seconds

    def _on_lag(self, lag: float) -> None:
        before = self._limit.value
        slowest, fastest = self._slowest_ack, self._fastest_ack
        self._slowest_ack, self._fastest_ack = 0.0, math.inf
        if self._limit.observe(lag, slowest, fastest) > before:
            self._wake()

    async def _work(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sender = self._take()
            if sender is None:
                if self._stop_requested.is_set():
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                self._parked.append(waiter)
                await waiter
                self._waking -= 1
                continue
            if self._ready:
                self._wake()  # more is due than this worker can take
            self._active += 1
            worker.busy = True
            try:
                await self._run(sender)
            finally:
                worker.busy = False
                self._active -= 1
                sender.state = _IDLE
                if not self._running:
                    pass  # stopping: what is left stays pending in the inbox
                elif sender.heap or sender.retry is not None:
                    self._schedule(sender, self._clock())
                elif self._senders.get(sender.key) is sender:
                    del self._senders[sender.key]

    async def _run(self, sender: _Sender) -> None:
        """One attempt at the sender's next event; a failed one waits out its back-off."""
        job = sender.retry
        if job is None:
            _, _, stored = heapq.heappop(sender.heap)
            kind = stored.kind if stored.kind in _KINDS else EventKind.UNKNOWN.value
            progress = _Progress(stored.replies_sent, replied=stored.replies_sent > 0)
            job = _Job(stored, kind, stored.attempts, progress)
        sender.retry = None
        delay: float | None = None
        try:
            delay = await self._process(job)
        finally:
            if delay is None:
                self._forget(job.stored.id)
            else:
                sender.retry, sender.retry_at = job, self._clock() + delay

    def _forget(self, event_id: int) -> None:
        self._known.discard(event_id)
        if not self._known and not self._writes:
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

    # --- write-behind ---

    def _behind(self, write: Awaitable[object]) -> None:
        """Track a write that is queued (a Future) or about to be (a coroutine, as a task)."""
        future = asyncio.ensure_future(write)
        self._writes.add(future)
        self._idle.clear()
        future.add_done_callback(self._landed)

    def _landed(self, future: asyncio.Future[Any]) -> None:
        self._writes.discard(future)
        if not future.cancelled() and future.exception() is not None:
            # The event stays pending: it is redone after a restart, and the recorded
            # progress keeps replies from going out twice.
            logger.error(
                "inbox write failed", exc_info=future.exception(), extra={"log_type": "worker"}
            )
        if not self._writes and not self._known:
            self._idle.set()

    async def _mark_done(self, event_id: int) -> None:
        # Write-behind: queued into the next group commit, not awaited before the next event.
        try:
            self._behind(self._inbox.mark_done_nowait(event_id))
        except Exception:
            logger.exception("inbox write failed", extra={"log_type": "worker"})

    # --- one event ---

    async def _process(self, job: _Job) -> float | None:
        """One attempt; returns the back-off before the next one, or None when finished."""
        if self._stop_requested.is_set():
            return None  # stays pending for the next start
        stored, kind = job.stored, job.kind
        metrics = self._metrics
        metrics.workers_busy.inc()
        started = self._clock()
        try:
            if not job.started:
                metrics.queue_wait.observe(max(0.0, started - stored.received_at))
                job.started = True
            handled, error = await self._attempt(stored, job.attempts + 1, job.progress)
        finally:
            metrics.workers_busy.dec()
            self._handler_duration[kind].observe(max(0.0, self._clock() - started))
        if error is None:
            await self._settle(stored, kind, "handled" if handled else "unhandled", None)
            return None
        job.attempts += 1
        reason = f"{type(error).__name__}: {error}"[:500]
        exhausted = job.attempts >= self._settings.handler_max_attempts
        if exhausted or isinstance(error, BadPayloadError):
            await self._settle(stored, kind, "dead_lettered", reason)
            return None
        self._count(kind, "failed")
        metrics.handler_retries.labels(event_type=kind).inc()
        await self._safe(self._inbox.record_failure(stored.id, job.attempts, reason))
        return backoff_delay(
            job.attempts,
            base=self._settings.handler_backoff_base_seconds,
            cap=_HANDLER_BACKOFF_CAP_SECONDS,
        )

    async def _settle(
        self, stored: StoredEvent, kind: str, outcome: str, error: str | None
    ) -> None:
        if error is None:
            await self._mark_done(stored.id)
            self._remember_done(stored.id)
        else:
            logger.error(
                "event dead-lettered: %s",
                error,
                extra={"log_type": "worker", "event_id": stored.id, "event_type": kind},
            )
            await self._safe(self._inbox.dead_letter(stored.id, error))
            self._metrics.dead_letters.labels(event_type=kind).inc()
        self._count(kind, outcome)
        self._metrics.last_processed.set(self._clock())

    def _count(self, kind: str, outcome: str) -> None:
        child = self._processed.get((kind, outcome))
        if child is None:
            child = self._processed[(kind, outcome)] = self._metrics.events_processed.labels(
                event_type=kind, outcome=outcome
            )
        child.inc()

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
        parent, producer = _producer_context(stored.traceparent)
        if self._untraced:
            # No span can be recorded: the stored context alone keeps the trace id in logs
            # and in the Send API's outgoing traceparent.
            span: Span = NonRecordingSpan(producer) if producer is not None else INVALID_SPAN
            token = otel_context.attach(set_span_in_context(span, parent))
            try:
                return await self._try(stored, progress, span)
            finally:
                otel_context.detach(token)
        attributes: dict[str, Any] = {
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "bot.inbound",
            "messaging.message.id": str(stored.id),
            "bot.event_type": stored.kind,
            "bot.page_id": stored.page_id,
            **user_attributes(stored.sender_key, hash_key=user_hash_key(self._settings)),
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
            return await self._try(stored, progress, span)

    async def _try(
        self, stored: StoredEvent, progress: _Progress, span: Span
    ) -> tuple[bool, BaseException | None]:
        try:
            event = _to_inbound(stored)
            if span.is_recording() and event.mid:
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
        if psid and event.kind in WINDOW_OPENING_KINDS and event.timestamp_ms:
            write = self._windows.touch(event.page_id, psid, event.timestamp_ms)
            if write is not None:
                # The cache already knows the window; the write must not hold up the reply.
                self._behind(write)
        result = await self._router.dispatch(event)
        if event.kind is EventKind.ECHO:
            self._metrics.echoes_ignored.inc()
            return result.handled
        replies = result.replies
        if replies and not progress.replied and event.timestamp_ms:
            self._reply_slo.expect(stored.id, since=event.timestamp_ms / 1000)
        for index in range(progress.replies_done, len(replies)):
            outcome = await self._replies.deliver(event.page_id, psid, replies[index])
            progress.replies_done = index + 1
            if outcome.sent and not progress.replied:
                progress.replied = True
                self._reply_slo.replied(stored.id)
                self._observe_first_reply(event, span)
            # After the last reply mark_done follows and covers it: one commit less.
            if outcome.called and index + 1 < len(replies):
                await self._inbox.record_reply_sent(stored.id, progress.replies_done)
        return result.handled

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


def _producer_context(traceparent: str | None) -> tuple[OtelContext, Any]:
    """The stored producer span as a parent context (and its span context for the link).

    Always an explicit context, never the current one: a worker must not inherit a span.
    """
    producer = span_context_from_traceparent(traceparent)
    if producer is None:
        return OtelContext(), None
    return set_span_in_context(NonRecordingSpan(producer), OtelContext()), producer


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
