"""The edge's admission gate: ``bot.admission``'s decision wired to the engine and the metrics.

The app builds one ``AdmissionGate`` and hands it to the HTTP protocol (``bot.http_guard``),
which asks ``refuses()`` once per ``POST /webhook`` as soon as its headers are in. The
lifespan ``attach``-es the engine (its backlogs and finished counts) and starts the gate's
timer, which samples the engine a few times per second and tells it whether the edge is
refusing (the workers then keep their full share: ``bot.worker_limit``).

An event is answered in two stages, each with its own backlog and finishing rate: its
handler (events acked and not handled) and its replies (committed and not settled). A new
event waits through both, so the gate refuses once the two backlogs together would take
``WEBHOOK_BACKLOG_LIMIT_SECONDS``: the shares of their bounds add up to one. Counting the
handlers alone let a flood outrun the sender: the gate let in about 2,100 events/s while
replies left at about 1,450/s, and the unsent replies (10,000 after 20 s) were invisible to
it. Only the replies that can go now count: one that waits for Graph (a back-off) or for an
echo, and the later replies of its conversation queued behind it, go at Graph's pace, and
refusing for them would only make Meta deliver again into the same wait. So an outage never
makes the gate refuse, and one throttled conversation does not hide the others' backlog.

>>> gate = AdmissionGate(Admission(limit_seconds=2, floor_events=500), metrics)  # doctest: +SKIP
>>> gate.attach(engine); gate.start()                                             # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from bot.admission import Admission, Refusal
from bot.metrics import BotMetrics
from bot.settings import BotSettings

TICK_SECONDS = 0.1


class Backlog(Protocol):
    """What the gate needs from the engine."""

    @property
    def backlog(self) -> int:
        """Events acked and not finished (scheduled or running)."""

    @property
    def completed(self) -> int:
        """Events finished since start (a running total)."""

    @property
    def replies_ready(self) -> int:
        """Replies committed, not settled and not held up by a wait on Graph or an echo."""

    @property
    def replies_settled(self) -> int:
        """Replies settled since start (a running total)."""

    def set_overloaded(self, overloaded: bool) -> None:
        """The edge is refusing: workers should run at their full share."""


class AdmissionGate:
    """``refuses()`` per webhook POST (two reads and a compare); ``tick()`` from a timer."""

    def __init__(
        self, admission: Admission, metrics: BotMetrics, replies: Admission | None = None
    ) -> None:
        """``admission`` bounds the events' backlog, ``replies`` (same settings by default)
        the replies' backlog."""
        self.admission = admission
        self.replies = replies or Admission(
            limit_seconds=admission.limit_seconds,
            floor_events=admission.floor_events,
            window_seconds=admission.window_seconds,
        )
        self.refusal: Refusal = admission.refusal
        self._source: Backlog | None = None
        self._refused = metrics.webhook_refused.labels(self.refusal.reason)
        # A refusal skips the ASGI lane; it still counts as a 503 of the route, so the 5xx
        # ratio and its alert see a bot that keeps refusing (it answers in microseconds).
        self._answered = metrics.http_request_duration.labels("POST", "/webhook", "503")
        self._backlog_gauge = metrics.webhook_backlog
        self._bound_gauge = metrics.webhook_backlog_limit
        self._reply_backlog_gauge = metrics.webhook_reply_backlog
        self._reply_bound_gauge = metrics.webhook_reply_backlog_limit
        self._timer: asyncio.TimerHandle | None = None
        self._overloaded = False

    @classmethod
    def from_settings(cls, settings: BotSettings, metrics: BotMetrics) -> AdmissionGate:
        return cls(
            Admission(
                limit_seconds=settings.webhook_backlog_limit_seconds,
                floor_events=settings.webhook_backlog_floor_events,
            ),
            metrics,
        )

    def attach(self, source: Backlog) -> None:
        self._source = source

    def detach(self) -> None:
        self._source = None

    @property
    def refusing(self) -> bool:
        """Whether a POST arriving now would be turned away (nothing is counted)."""
        source = self._source
        if source is None:
            return False
        used = self.admission.share(source.backlog) + self.replies.share(source.replies_ready)
        return used >= 1.0

    def refuses(self) -> bool:
        """Whether this POST is turned away (counted); never while no engine is attached."""
        if not self.refusing:
            return False
        self._refused.inc()
        self._answered.observe(0.0)
        return True

    def tick(self, now: float) -> None:
        """Sample the engine: a new bound from its finishing rate, and the overloaded flag."""
        source = self._source
        if source is None or not self.admission.enabled:
            return
        self._bound_gauge.set(self.admission.observe(completed=source.completed, now=now))
        self._backlog_gauge.set(source.backlog)
        self._reply_bound_gauge.set(self.replies.observe(completed=source.replies_settled, now=now))
        self._reply_backlog_gauge.set(source.replies_ready)
        overloaded = self.refusing
        if overloaded != self._overloaded:
            self._overloaded = overloaded
            source.set_overloaded(overloaded)

    def start(self) -> None:
        """Tick every ``TICK_SECONDS`` on the running loop (idempotent)."""
        if self._timer is None and self.admission.enabled:
            self._arm(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(TICK_SECONDS, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tick(time.monotonic())
        self._arm(loop)
