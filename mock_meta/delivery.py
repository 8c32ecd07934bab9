"""The platform side of every webhook: signed POSTs, Meta's retry rules, alert and disable.

Events of one PSID go out in FIFO order with one POST in flight per PSID; many PSIDs are in
flight at once (``max_in_flight``, each on a keep-alive connection of
:class:`~mock_meta.webhook_http.WebhookHttpClient`, or through an injected httpx client).
A failed event gets the profile's immediate retries, then spaced retries on the platform
clock, and stops blocking the PSID's later events meanwhile (so order breaks after failures,
as on Meta). A Page whose deliveries keep failing raises a developer alert at
``alert_after`` and is unsubscribed at ``disable_after``; any success resets that timer.

``subscriptions`` is the platform state (``mock_meta.state.PlatformState``), as
``mock_meta.runtime`` wires it; ``EventBuilder`` is ``mock_meta.builders``:

>>> engine = DeliveryEngine(clock=clock, journal=journal, metrics=metrics,   # doctest: +SKIP
...                         profile=RetryProfile(), chaos=Chaos(), subscriptions=state)
>>> await engine.start()                                                     # doctest: +SKIP
>>> target = AppTarget("1234567890123456", "test_app_secret", "http://127.0.0.1:8000/webhook")
>>> target  # the app secret signs each POST and stays out of reprs and logs
AppTarget(app_id='1234567890123456', callback_url='http://127.0.0.1:8000/webhook')
>>> ev = EventBuilder(clock).text("104501234567890", "6543210987654321", "hi")  # doctest: +SKIP
>>> engine.enqueue(target, ev.page_id, ev.event, field=ev.field,             # doctest: +SKIP
...                psid=ev.psid, mid=ev.mid, event_type=ev.event_type)
'dlv_1'
>>> await engine.stop()                                                      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from mock_meta.builders import entry, envelope
from mock_meta.chaos import Chaos
from mock_meta.clock import Clock
from mock_meta.journal import AttemptRecord, DeliveryRecord, Journal
from mock_meta.metrics import MockMetrics, attempt_label
from mock_meta.retry_profile import RetryProfile
from mock_meta.settings import TimestampUnit
from mock_meta.webhook_http import WebhookConnectionError, WebhookHttpClient
from mock_meta.wire import (
    SIGNATURE_256_HEADER,
    SignatureMode,
    new_traceparent,
    serialize,
    webhook_headers,
)

# Keeps a bot that takes ~50 ms per ack busy at ~1,000 deliveries/s; a POST in flight is one
# keep-alive connection, which costs WebhookHttpClient next to nothing.
DEFAULT_MAX_IN_FLIGHT = 64

_Key = tuple[str, str, str]  # (app_id, page_id, psid or "") — one FIFO per key
_PageKey = tuple[str, str]  # (app_id, page_id)


class Subscriptions(Protocol):
    """What the engine needs from the platform state (``mock_meta.state`` implements it)."""

    def is_delivering(self, app_id: str, page_id: str, field: str) -> bool:
        """Subscribed to ``field`` at app AND page level, and not disabled."""

    def disable(self, app_id: str, page_id: str, reason: str) -> None:
        """Unsubscribe the app from the page after an hour of failures ("Webhooks Disabled")."""


class DeliveryObserver(Protocol):
    """Sees what the journal does not keep: each event as queued, each attempt's exact bytes.

    The web console implements it; observers must be quick (they run on the delivery path).
    """

    def enqueued(self, record: DeliveryRecord, event: dict[str, Any]) -> None:
        """``event`` (the ``messaging[]`` object) was queued as the delivery ``record``."""

    def attempted(
        self, record: DeliveryRecord, attempt: AttemptRecord, body: bytes, headers: dict[str, str]
    ) -> None:
        """One POST of ``record`` was made with exactly ``body`` and ``headers``."""


@dataclass(frozen=True, slots=True)
class AppTarget:
    """Where and how an app receives webhooks."""

    app_id: str
    app_secret: str = field(repr=False)
    callback_url: str


@dataclass(slots=True, eq=False)
class _Delivery:
    id: str
    target: AppTarget
    page_id: str
    event: dict[str, Any]
    field: str
    psid: str | None
    mid: str | None
    standby: bool
    record: DeliveryRecord
    signature_mode: SignatureMode | None
    attempts: int = 0
    first_attempt_at: float | None = None
    # Chaos holds a delivery back behind the next one at most once; deciding again on every
    # pop could starve it behind an endless stream of later events.
    held_back: bool = False
    # Computed once (``field`` is a member here): the hot path reads them several times.
    key: _Key = dataclasses.field(init=False)
    page_key: _PageKey = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.key = (self.target.app_id, self.page_id, self.psid or "")
        self.page_key = (self.target.app_id, self.page_id)


class DeliveryEngine:
    """Delivers webhook events to apps; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        journal: Journal,
        metrics: MockMetrics,
        profile: RetryProfile,
        chaos: Chaos,
        subscriptions: Subscriptions,
        client: httpx.AsyncClient | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        include_sha1: bool = True,
        propagate_traceparent: bool = False,
        timestamp_unit: TimestampUnit = "milliseconds",
    ) -> None:
        """``client``: POST through this httpx client (tests pass a ``MockTransport`` one)
        instead of the engine's own :class:`WebhookHttpClient`; the caller closes it."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.profile = profile
        self.include_sha1 = include_sha1
        # Meta sends no trace context; a test may ask for one to follow a message end to end.
        self.propagate_traceparent = propagate_traceparent
        # "seconds": entry and event timestamps in seconds, as Meta sometimes sends them.
        self.timestamp_unit: TimestampUnit = timestamp_unit
        self._clock = clock
        self._journal = journal
        self._metrics = metrics
        self._chaos = chaos
        self._subscriptions = subscriptions
        self._given_client = client
        self._http: WebhookHttpClient | None = None  # built by start(), closed by stop()
        # Metric children by label values: ``.labels()`` costs more than the observation.
        self._attempt_counters: dict[tuple[str, str], Any] = {}
        self._durations: dict[str, Any] = {}
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._wakeup = asyncio.Event()
        self._ids = itertools.count(1)
        self._queues: dict[_Key, deque[_Delivery]] = {}
        self._busy: set[_Key] = set()
        self._ready: deque[_Key] = deque()
        self._ready_set: set[_Key] = set()
        self._live: set[str] = set()
        self._scheduled: dict[str, tuple[_Delivery, asyncio.Task[None]]] = {}
        self._due: dict[str, float] = {}  # delivery id -> clock time of its next retry
        self._failing_since: dict[_PageKey, float] = {}
        self._last_error: dict[_PageKey, str] = {}
        self._watchdogs: dict[_PageKey, asyncio.Task[None]] = {}
        self._watch_due: dict[_PageKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.observers: list[DeliveryObserver] = []

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._dispatcher is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._given_client is None and self._http is None:
            # It reads no proxy settings: a developer's HTTP(S)_PROXY never captures webhooks.
            self._http = WebhookHttpClient(max_idle_per_origin=self._max_in_flight)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="mock-meta-delivery")

    async def stop(self) -> None:
        """Cancel in-flight work; unsettled deliveries stay queued in memory for a restart."""
        tasks = [t for t in (self._dispatcher, *self._tasks, *self._watchdogs.values()) if t]
        for item, task in self._scheduled.values():
            tasks.append(task)
            self._push(item, True)  # retried at once after a restart rather than lost
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dispatcher = None
        self._tasks.clear()
        self._watchdogs.clear()
        self._watch_due.clear()
        self._failing_since.clear()  # a restart starts a fresh failure streak
        self._scheduled.clear()
        self._due.clear()
        self._metrics.retry_backlog.set(0)
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    def reset(self) -> None:
        """Forget every queued and scheduled delivery and failure timer (``/_mock/reset``)."""
        for _, task in self._scheduled.values():
            task.cancel()
        for task in self._watchdogs.values():
            task.cancel()
        self._scheduled.clear()
        self._due.clear()
        self._watchdogs.clear()
        self._watch_due.clear()
        self._failing_since.clear()
        self._queues.clear()
        self._ready.clear()
        self._ready_set.clear()
        self._live.clear()
        self._metrics.retry_backlog.set(0)

    @property
    def backlog(self) -> int:
        """Deliveries not settled yet: queued, in flight or waiting for a retry."""
        return len(self._live)

    @property
    def retrying(self) -> int:
        return len(self._scheduled)

    @property
    def quiet(self) -> bool:
        """Nothing will happen until the clock moves: no queued or in-flight POST, and every
        retry and alert/disable timer is due later than ``clock.now()``. Tests that advance a
        frozen clock step by step wait for this between steps."""
        if self._ready or self._busy:
            return False
        now = self._clock.now()
        if any(due <= now for due in self._due.values()):
            return False
        return all(due > now for page, due in self._watch_due.items() if page in self._watchdogs)

    def failing_since(self, app_id: str, page_id: str) -> float | None:
        """Clock time of the first failure in the current failure streak, if any."""
        return self._failing_since.get((app_id, page_id))

    # ---- intake ----------------------------------------------------------------------------
    def enqueue(
        self,
        target: AppTarget,
        page_id: str,
        event: dict[str, Any],
        *,
        field: str,
        psid: str | None,
        mid: str | None,
        standby: bool = False,
        event_type: str = "unknown",
        signature_mode: SignatureMode | None = None,
    ) -> str:
        """Queue one event for ``target``; returns its delivery id at once.

        Not subscribed (app or page level, or disabled) → journaled as ``skipped``, never sent.
        ``signature_mode`` overrides the chaos setting for this delivery only.
        """
        delivery_id = f"dlv_{next(self._ids)}"
        record = self._journal.record_delivery(
            delivery_id=delivery_id,
            app_id=target.app_id,
            page_id=page_id,
            psid=psid,
            mid=mid,
            event_type=event_type,
            field=field,
            standby=standby,
        )
        for observer in self.observers:
            observer.enqueued(record, event)
        if not self._subscriptions.is_delivering(target.app_id, page_id, field):
            reason = f"app {target.app_id} is not subscribed to {field!r} on page {page_id}"
            self._journal.delivery_finished(record, "skipped", reason=reason)
            return delivery_id
        item = _Delivery(
            delivery_id, target, page_id, event, field, psid, mid, standby, record, signature_mode
        )
        self._live.add(delivery_id)
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._push, item, False)
        else:
            self._push(item, False)
        return delivery_id

    def _push(self, item: _Delivery, front: bool) -> None:
        queue = self._queues.setdefault(item.key, deque())
        if front:
            queue.appendleft(item)
        else:
            queue.append(item)
        if item.key not in self._busy:
            self._mark_ready(item.key)

    def _mark_ready(self, key: _Key) -> None:
        if key not in self._ready_set:
            self._ready_set.add(key)
            self._ready.append(key)
            self._wakeup.set()

    # ---- dispatch ------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            while not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._slots.acquire()
            batch = self._take_batch()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self) -> list[_Delivery]:
        while self._ready:
            key = self._ready.popleft()
            self._ready_set.discard(key)
            if self._queues.get(key):
                break
        else:
            return []
        first = self._pop_head(key, reorder=True)
        batch = [first]
        limit = self._chaos.batch_size(first.id) if first.attempts == 0 else 1
        if limit > 1 and first.signature_mode is None:
            for other in list(self._ready):
                if len(batch) >= limit:
                    break
                queue = self._queues.get(other)
                head = queue[0] if queue else None
                if (
                    head is not None
                    and head.attempts == 0
                    and head.signature_mode is None
                    and head.target == first.target
                ):
                    self._ready.remove(other)
                    self._ready_set.discard(other)
                    batch.append(self._pop_head(other, reorder=False))
        return batch

    def _pop_head(self, key: _Key, *, reorder: bool) -> _Delivery:
        queue = self._queues[key]
        head = queue[0]
        if reorder and len(queue) >= 2 and not head.held_back:
            chaos = self._chaos
            if chaos.config.reorder_probability and chaos.should_reorder(head.id):
                head.held_back = True
                queue[0], queue[1] = queue[1], head
        item = queue.popleft()
        if not queue:
            del self._queues[key]
        self._busy.add(key)
        return item

    async def _run(self, batch: list[_Delivery]) -> None:
        try:
            await self._deliver(batch)
        except asyncio.CancelledError:
            # stop() mid-POST: keep the events so a restarted engine delivers them.
            for item in reversed(batch):
                if item.id in self._live and not item.record.finished:
                    self._push(item, True)
            raise
        finally:
            self._slots.release()
            for item in batch:
                self._busy.discard(item.key)
                if self._queues.get(item.key):
                    self._mark_ready(item.key)

    async def _deliver(self, batch: list[_Delivery]) -> None:
        batch = [item for item in batch if self._still_subscribed(item)]
        if not batch:
            return
        now = self._clock.now()
        seconds = self.timestamp_unit == "seconds"
        stamp = int(now) if seconds else int(now * 1000)
        entries = [
            entry(
                i.page_id,
                [_in_seconds(i.event) if seconds else i.event],
                time_ms=stamp,
                standby=i.standby,
            )
            for i in batch
        ]
        body = serialize(envelope(entries))
        target = batch[0].target
        mode = batch[0].signature_mode or self._chaos.signature_mode
        headers = webhook_headers(
            body, target.app_secret, signature_mode=mode, include_sha1=self.include_sha1
        )
        if self.propagate_traceparent:
            headers["traceparent"] = new_traceparent()
            for item in batch:
                item.record.traceparent = headers["traceparent"]
        while True:
            outcome = await self._attempt(batch, body, headers)
            if outcome == "success":
                for item in batch:
                    self._finish(item, "delivered")
                for page in {i.page_key for i in batch}:
                    self._page_succeeded(page)
                chaos = self._chaos
                if chaos.config.duplicate_probability and chaos.should_duplicate(batch[0].id):
                    # A lost ack as seen by the bot: the very same bytes and signature again.
                    await self._attempt(batch, body, headers, duplicate=True)
                return
            for page in {i.page_key for i in batch}:
                self._page_failed(page)
            batch = [item for item in batch if self._still_subscribed(item)]
            if not batch:
                return
            if not self.profile.is_immediate(batch[0].attempts):
                for item in batch:
                    self._schedule_retry(item)
                return

    async def _attempt(
        self,
        batch: list[_Delivery],
        body: bytes,
        headers: dict[str, str],
        *,
        duplicate: bool = False,
    ) -> str:
        at = self._clock.now()
        # From here on the bot may answer these events (the journal's reply accounting).
        mark = self._journal.posting([item.record for item in batch])
        status, outcome, error, latency = await self._post(
            batch[0].target.callback_url, body, headers
        )
        duration = self._durations.get(outcome)
        if duration is None:
            duration = self._durations[outcome] = self._metrics.delivery_duration.labels(
                outcome=outcome
            )
        duration.observe(latency)
        if outcome != "success":
            for page in {i.page_key for i in batch}:
                self._last_error[page] = error or outcome
        for item in batch:
            item.attempts += 1
            if item.first_attempt_at is None:
                item.first_attempt_at = at
            labels = (outcome, attempt_label(item.attempts))
            counter = self._attempt_counters.get(labels)
            if counter is None:
                counter = self._attempt_counters[labels] = self._metrics.deliveries.labels(
                    outcome=labels[0], attempt=labels[1]
                )
            counter.inc()
            attempt = AttemptRecord(
                attempt=item.attempts,
                at=at,
                status=status,
                latency_seconds=latency,
                outcome=outcome,
                signature=headers.get(SIGNATURE_256_HEADER),
                error=error,
                duplicate=duplicate,
                batch_size=len(batch),
                sent_mark=mark,
            )
            self._journal.delivery_attempted(item.record, attempt)
            for observer in self.observers:
                observer.attempted(item.record, attempt, body, headers)
        return outcome

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str, str | None, float]:
        http, client = self._http, self._given_client
        timeout = self.profile.timeout_seconds
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):  # the whole attempt: connect, send, answer
                if http is not None:
                    status = await http.post(url, body, headers)
                else:
                    assert client is not None, "start() the engine first"
                    response = await client.post(
                        url, content=body, headers=headers, timeout=timeout
                    )
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return None, "timeout", f"no answer within {timeout:g} s", time.perf_counter() - started
        except (WebhookConnectionError, httpx.HTTPError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return None, "connection_error", error, time.perf_counter() - started
        latency = time.perf_counter() - started
        if self.profile.is_success(status):
            return status, "success", None, latency
        return status, "http_error", f"HTTP {status} (expected {self._expected()})", latency

    def _expected(self) -> str:
        return "200" if self.profile.success == "exact_200" else "2xx"

    # ---- retries -----------------------------------------------------------------------------
    def _schedule_retry(self, item: _Delivery) -> None:
        due = self._clock.now() + self.profile.delay_after(item.attempts)
        first = item.first_attempt_at if item.first_attempt_at is not None else due
        if due - first > self.profile.give_up_after:
            self._drop(item, "expired")
            return
        self._journal.delivery_retrying(item.record)
        task = asyncio.create_task(self._requeue_at(item, due))
        self._scheduled[item.id] = (item, task)
        self._due[item.id] = due
        self._metrics.retry_backlog.set(len(self._scheduled))

    async def _requeue_at(self, item: _Delivery, due: float) -> None:
        await self._clock.sleep_until(due)
        self._scheduled.pop(item.id, None)
        self._due.pop(item.id, None)
        self._metrics.retry_backlog.set(len(self._scheduled))
        if self._still_subscribed(item):
            self._push(item, True)

    def _still_subscribed(self, item: _Delivery) -> bool:
        if self._subscriptions.is_delivering(item.target.app_id, item.page_id, item.field):
            return True
        self._drop(item, "unsubscribed")
        return False

    def _finish(self, item: _Delivery, state: str, reason: str | None = None) -> None:
        self._live.discard(item.id)
        self._journal.delivery_finished(item.record, state, reason=reason)

    def _drop(self, item: _Delivery, reason: str) -> None:
        self._metrics.deliveries_dropped.labels(reason=reason).inc()
        self._finish(item, "dropped", reason)

    # ---- page failure streaks ----------------------------------------------------------------
    def _page_succeeded(self, page: _PageKey) -> None:
        self._failing_since.pop(page, None)
        self._last_error.pop(page, None)
        self._watch_due.pop(page, None)
        watchdog = self._watchdogs.pop(page, None)
        if watchdog is not None:
            watchdog.cancel()

    def _page_failed(self, page: _PageKey) -> None:
        if page in self._failing_since:
            return
        since = self._clock.now()
        self._failing_since[page] = since
        self._watchdogs[page] = asyncio.create_task(self._watch(page, since))

    async def _watch(self, page: _PageKey, since: float) -> None:
        app_id, page_id = page
        self._watch_due[page] = since + self.profile.alert_after
        await self._clock.sleep_until(since + self.profile.alert_after)
        if self._failing_since.get(page) != since:
            return
        minutes = self.profile.alert_after / 60
        self._journal.record_alert(
            app_id,
            page_id,
            "failing_15m",
            f"Webhook deliveries for page {page_id} have been failing for {minutes:g} minutes "
            f"(last error: {self._last_error.get(page, 'unknown')})",
        )
        self._metrics.developer_alerts.labels(kind="failing_15m").inc()
        self._watch_due[page] = since + self.profile.disable_after
        await self._clock.sleep_until(since + self.profile.disable_after)
        if self._failing_since.get(page) != since:
            return
        self._watchdogs.pop(page, None)
        self._watch_due.pop(page, None)
        self._disable(page)

    def _disable(self, page: _PageKey) -> None:
        app_id, page_id = page
        minutes = self.profile.disable_after / 60
        reason = f"webhook deliveries failing for {minutes:g} minutes"
        self._failing_since.pop(page, None)
        self._subscriptions.disable(app_id, page_id, reason)
        self._journal.record_subscription(app_id, page_id, "disabled", reason=reason)
        self._journal.record_alert(
            app_id,
            page_id,
            "webhooks_disabled",
            f"Webhooks Disabled: app {app_id} was unsubscribed from page {page_id} ({reason}); "
            f"re-subscribe with POST /{page_id}/subscribed_apps",
        )
        self._metrics.developer_alerts.labels(kind="webhooks_disabled").inc()
        self.drop_page(app_id, page_id)

    def drop_page(self, app_id: str, page_id: str, reason: str = "unsubscribed") -> int:
        """Drop every queued and retry-waiting delivery of (app, page); returns how many."""
        dropped = 0
        for key in [k for k in self._queues if k[0] == app_id and k[1] == page_id]:
            for item in self._queues.pop(key):
                self._drop(item, reason)
                dropped += 1
        for delivery_id, (item, task) in list(self._scheduled.items()):
            if item.page_key == (app_id, page_id):
                task.cancel()
                del self._scheduled[delivery_id]
                self._due.pop(delivery_id, None)
                self._drop(item, reason)
                dropped += 1
        self._metrics.retry_backlog.set(len(self._scheduled))
        return dropped


def _in_seconds(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` with its epoch-millisecond ``timestamp`` cut to whole seconds."""
    stamp = event.get("timestamp")
    if not isinstance(stamp, int):
        return event
    return {**event, "timestamp": stamp // 1000}
