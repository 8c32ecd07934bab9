"""The processing engine: stored events in, replies out, each handler run once.

>>> engine = Engine(settings=s, inbox=inbox, router=router, send_api=api, metrics=metrics,
...                 tracer=provider.get_tracer("bot"))  # doctest: +SKIP
>>> await engine.start()          # unsettled replies, pending events  # doctest: +SKIP
>>> engine.submit(stored_events)  # after inbox.enqueue() returned     # doctest: +SKIP
>>> await engine.stop(grace=10)   # what is left stays in the inbox    # doctest: +SKIP

Two lanes over one pure scheduler each (``bot.scheduler`` in the shell ``bot.lane``):
events run one at a time per sender in ``(timestamp_ms, id)`` order, each held for
``ORDERING_WINDOW_MS`` after receipt, through ``EventProcessor`` (decode, route, commit); the
committed replies leave through ``ReplyOutbox``, one at a time per conversation. How many
events run at once follows the event loop's lag and the acks' durations
(``bot.worker_limit``), never below ``WORKER_MIN_CONCURRENCY`` (opt-in,
``WORKER_CATCH_UP_CONCURRENCY`` while the workers fall behind a load the core can carry):
acks come first, but the backlog keeps moving at any offered rate. While the edge refuses a
flood's excess (``bot.edge_admission``) the acks' durations no longer count and at least half
of ``WORKER_CONCURRENCY`` run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from opentelemetry import trace
from opentelemetry.trace import Tracer

from bot.cancel import cancel_and_wait
from bot.inbox import Inbox, StoredEvent, StoredReply, WindowStore
from bot.lane import Lane
from bot.metrics import BotMetrics
from bot.outbox import ReplyOutbox
from bot.processor import EventJob, EventProcessor
from bot.retry import backoff_delay
from bot.routing import Router
from bot.send_api import SendApi
from bot.settings import BotSettings
from bot.window_cache import WindowCache
from bot.worker_limit import (
    CATCH_UP_ACK_SECONDS,
    DEFAULT_LAG_TARGET_SECONDS,
    DEMAND_SAMPLE_TICKS,
    AdaptiveLimit,
    LagProbe,
)

logger = logging.getLogger("bot.engine")

_RECENT_LIMIT = 10_000
_FAILED_STEP_BACKOFF_CAP_SECONDS = 30.0


class Engine:
    """See the module docstring and docs/architecture.md ("Reply outbox").

    ``inbox`` must also be a ``WindowStore`` unless ``windows`` is given. ``clock`` returns
    wall-clock seconds (the clock of ``StoredEvent.received_at``); ``replay_poll_seconds`` is
    how often CLI replays are picked up; ``lag_target`` ``None`` turns the adaptive limit off.
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
        windows: WindowStore | None = None,
        replay_poll_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        lag_target: float | None = DEFAULT_LAG_TARGET_SECONDS,
    ) -> None:
        if tracer is None:
            tracer = trace.get_tracer("bot.workers")
        elif isinstance(tracer, trace.TracerProvider):
            tracer = tracer.get_tracer("bot.workers")
        self._settings = settings
        self._inbox = inbox
        self._metrics = metrics
        self._clock = clock
        self._replay_poll_seconds = replay_poll_seconds
        self._hold = settings.ordering_window_ms / 1000
        store: WindowStore = windows if windows is not None else inbox  # type: ignore[assignment]
        cache = WindowCache(store)
        self._outbox = ReplyOutbox(
            settings=settings,
            inbox=inbox,
            windows=cache,
            send_api=send_api,
            metrics=metrics,
            clock=clock,
        )
        self._processor = EventProcessor(
            settings=settings,
            inbox=inbox,
            router=router,
            windows=cache,
            outbox=self._outbox,
            metrics=metrics,
            tracer=tracer,
            clock=clock,
            stopping=lambda: not self._running,
        )
        concurrency = max(1, settings.worker_concurrency)
        self._limit = AdaptiveLimit(
            concurrency,
            floor=min(settings.worker_min_concurrency, concurrency),
            overload_floor=settings.worker_overload_concurrency,  # clamped by AdaptiveLimit
            catch_up_floor=settings.worker_catch_up_concurrency,
            lag_target=lag_target or 0.0,
            ack_margin=settings.ack_budget_seconds,
        )
        self._probe = LagProbe(self._on_lag) if lag_target else None
        self._slowest_ack, self._fastest_ack = 0.0, math.inf  # since the last probe tick
        # Demand since the last sample (AdaptiveLimit.sample_demand), counted only while a
        # catch-up floor is set: the acks and the probe's ticks pay nothing for it otherwise.
        self._samples_demand = self._limit.can_catch_up
        self._ticks = self._held_back_ticks = 0
        self._arrived = self._arrived_before = self._completed_before = 0
        self._acks = self._slow_acks = 0
        self._events: Lane[EventJob] = Lane(
            run=self._run_event,
            order=lambda job: job.order,
            limit=lambda: self._limit.value,
            clock=clock,
            name="events",
        )
        metrics.events_in_progress.set_function(lambda: self._events.active)
        metrics.worker_limit.set_function(lambda: self._limit.value)
        self._completed = 0  # events finished since start (the admission gate's rate)
        self._known: set[int] = set()  # scheduled or running
        self._recent_done: OrderedDict[int, None] = OrderedDict()
        self._running = False
        self._poll_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._running

    @property
    def limit(self) -> int:
        """Events allowed in progress right now (lowered while the event loop lags)."""
        return self._limit.value

    @property
    def backlog(self) -> int:
        """Events acked and not finished: scheduled, held or running."""
        return len(self._events)

    @property
    def completed(self) -> int:
        """Events finished (handled or dead-lettered) since this engine was built."""
        return self._completed

    @property
    def reply_backlog(self) -> int:
        """Replies committed and not settled."""
        return self._outbox.backlog

    @property
    def replies_ready(self) -> int:
        """Unsettled replies not held up by a wait on Graph (a back-off) or on an echo."""
        return self._outbox.ready

    @property
    def replies_settled(self) -> int:
        """Replies settled since this engine was built (a running total)."""
        return self._outbox.settled

    def set_overloaded(self, overloaded: bool) -> None:
        """The edge refuses new POSTs (``bot.edge_admission``): most answers are cheap 503s,
        so the workers stop yielding to the acks (``AdaptiveLimit.hold``)."""
        if self._limit.hold(overloaded):
            self._events.poke()

    async def start(self) -> None:
        """Load unsettled replies and pending events from the inbox and start both lanes."""
        if self._running:
            return
        if not self._settings.echoes_subscribed:
            logger.warning(
                "MESSENGER_ECHOES_SUBSCRIBED is off: a reply of unknown fate cannot be settled"
                " by its echo and is %s at once",
                "re-sent" if self._settings.reply_guarantee == "at_least_once" else "dropped",
                extra={"log_type": "lifecycle"},
            )
        # Running before the reads: events the edge submits meanwhile are not turned away.
        self._running = True
        try:
            replies = await self._inbox.unsettled_replies()
            pending = await self._inbox.pending()
        except BaseException:
            self._running = False
            raise
        self._limit.value = self._limit.ceiling
        self._outbox.restore(replies)
        self._outbox.start()
        self._events.start()
        if self._probe is not None:
            self._probe.start()
        self.submit(pending)
        self._poll_task = asyncio.get_running_loop().create_task(self._poll_replays())

    def adopt(self, replies: Iterable[StoredReply], events: Iterable[StoredEvent]) -> None:
        """Take over work a stopped replica left (its shards): its unsettled replies first,
        those of unknown fate waiting for their echoes, then its pending events."""
        self._outbox.restore(replies)
        self.submit(events)

    def submit(self, events: Iterable[StoredEvent | None]) -> None:
        """Schedule stored events (``None`` entries, i.e. duplicates, are skipped). Never blocks."""
        if not self._running:
            return  # they are durable: the next start() loads them
        now = self._clock()
        hold = self._hold
        lane = self._events
        for event in events:
            if event is None or event.id in self._known or event.id in self._recent_done:
                continue
            self._known.add(event.id)
            self._arrived += 1
            # Events without a conversation have nothing to be ordered against.
            key = (event.page_id, event.sender_key) if event.sender_key else event.id
            job = EventJob(event, attempts=event.attempts)
            lane.add(key, job.order, job, ready_at=event.received_at + hold if hold else now)

    async def join(self) -> None:
        """Wait until every submitted event is finished and its replies are settled."""
        while True:
            await self._events.join()
            await self._outbox.join()
            if not len(self._events):
                return

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give in-flight work ``grace`` seconds, leave the rest stored."""
        if not self._running:
            return
        self._running = False
        grace = self._settings.shutdown_grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        if self._probe is not None:
            self._probe.stop()
        if self._poll_task is not None:
            await cancel_and_wait(self._poll_task)
            self._poll_task = None
        await self._events.stop(grace)
        await self._outbox.stop(max(0.0, deadline - time.monotonic()))
        self._known.clear()

    def note_ack(self, seconds: float, total: float = 0.0) -> None:
        """The edge reports each ack's duration: slow acks make the workers back off
        (``seconds``, the commit wait left out), and stop their catching up (``total``)."""
        if self._samples_demand:
            self._acks += 1
            if total > CATCH_UP_ACK_SECONDS:
                self._slow_acks += 1
        if seconds > self._slowest_ack:
            self._slowest_ack = seconds
        if seconds < self._fastest_ack:
            self._fastest_ack = seconds

    def _on_lag(self, lag: float) -> None:
        limit = self._limit
        before = limit.value
        slowest, fastest = self._slowest_ack, self._fastest_ack
        self._slowest_ack, self._fastest_ack = 0.0, math.inf
        limit.observe(lag, slowest, fastest)
        if self._samples_demand:
            self._sample_demand(limit)
        if limit.value > before:
            self._events.poke()

    def _sample_demand(self, limit: AdaptiveLimit) -> None:
        if len(self._events) > limit.value and self._events.active >= limit.value:
            self._held_back_ticks += 1
        self._ticks += 1
        if self._ticks >= DEMAND_SAMPLE_TICKS:
            limit.sample_demand(
                arrived=self._arrived - self._arrived_before,
                finished=self._completed - self._completed_before,
                binding=self._held_back_ticks * 2 > self._ticks,
                acks=self._acks,
                slow_acks=self._slow_acks,
            )
            self._arrived_before, self._completed_before = self._arrived, self._completed
            self._ticks = self._held_back_ticks = self._acks = self._slow_acks = 0

    async def _run_event(self, job: EventJob) -> float | None:
        try:
            again = await self._processor.run(job)
        except Exception:
            again = self._after_failed_step(job)
        if again is None:
            self._completed += 1
            self._known.discard(job.stored.id)
            if job.committed:  # the edge may hand a stored event over twice
                self._recent_done[job.stored.id] = None
                if len(self._recent_done) > _RECENT_LIMIT:
                    self._recent_done.popitem(last=False)
        return again

    def _after_failed_step(self, job: EventJob) -> float | None:
        """An attempt raised outside the handler (a store down, a bug): the event tries again
        after a back-off rather than waiting, unfinished, for the next restart. Once its
        replies are committed it is finished: its handler never runs twice."""
        job.failed_steps += 1
        logger.exception(
            "event step failed, %s (%d)",
            "already committed" if job.committed else "trying again",
            job.failed_steps,
            extra={"log_type": "worker", "event_id": job.stored.id},
        )
        self._metrics.step_failures.labels(lane="events").inc()
        if job.committed:
            return None
        return self._clock() + backoff_delay(
            job.failed_steps,
            base=self._settings.handler_backoff_base_seconds,
            cap=_FAILED_STEP_BACKOFF_CAP_SECONDS,
        )

    async def _poll_replays(self) -> None:
        # The inbox gauges are refreshed at scrape time by the edge, not here.
        while True:
            await asyncio.sleep(self._replay_poll_seconds)
            try:
                replayed = await self._inbox.take_replayed()
            except Exception:
                logger.exception("inbox replay poll failed", extra={"log_type": "worker"})
                continue
            self._outbox.add(replayed.replies)
            self.submit(replayed.events)
