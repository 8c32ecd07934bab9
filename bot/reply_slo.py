"""The reply SLO's events: each event that owes a reply counts once, met or missed.

Time to first reply is only observed when a reply goes out, so during a Send API outage the
slow-reply ratio stays at 0: the bad events are exactly the ones never measured. Here every
event that owes a reply gets a deadline (its user timestamp plus the SLO); the first reply
before the deadline counts it ``met``, and the deadline passing first counts it ``missed``
at that moment, while the outage lasts. A late reply after that counts nothing more.

>>> slo = ReplySlo(metrics.reply_slo_events, slo_seconds=5.0)  # doctest: +SKIP
>>> slo.expect(event_id, since=event.timestamp_ms / 1000)  # doctest: +SKIP
>>> slo.replied(event_id)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol


class _LabelledCounter(Protocol):
    def labels(self, result: str) -> Any: ...


class ReplySlo:
    """Deadlines of events that owe a reply; ``clock`` is wall-clock seconds (event time)."""

    def __init__(
        self,
        counter: _LabelledCounter,
        *,
        slo_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._met = counter.labels(result="met")
        self._missed = counter.labels(result="missed")
        self._slo = slo_seconds
        self._clock = clock
        self._pending: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}

    @property
    def pending(self) -> int:
        """Events owing a reply whose deadline has not passed yet."""
        return len(self._pending)

    def expect(self, key: Hashable, *, since: float) -> None:
        """``key`` owes a reply to an event the user sent at ``since`` (idempotent)."""
        if key in self._pending:
            return
        deadline = since + self._slo
        delay = max(0.0, deadline - self._clock())
        timer = asyncio.get_running_loop().call_later(delay, self._missed_by, key)
        self._pending[key] = (deadline, timer)

    def replied(self, key: Hashable) -> None:
        """The first reply for ``key`` went out: met unless its deadline already passed."""
        entry = self._pending.pop(key, None)
        if entry is not None:
            deadline, timer = entry
            timer.cancel()
            # A stalled loop may not have run the timer yet: the clock decides.
            (self._met if self._clock() <= deadline else self._missed).inc()

    def _missed_by(self, key: Hashable) -> None:
        if self._pending.pop(key, None) is not None:
            self._missed.inc()
