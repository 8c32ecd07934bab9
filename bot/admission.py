"""Admission control at the edge: refuse new webhook POSTs while the backlog is too deep.

One core cannot ack every event of a flood and still reply at capacity: each accepted event
costs its ack, its commit and its reply, so the excess must be turned away cheaply (a canned
``503``, see ``bot.http_guard``) and Meta delivers it again later (reference §"Retries").
The backlog is the events acked but not finished; the bound is ``limit_seconds`` of the
rate at which the engine recently finished events, never below ``floor_events`` (a cold bot
has no rate yet and must not refuse its first burst). Pure: time and counts are parameters.

>>> gate = Admission(limit_seconds=2.0, floor_events=100, window_seconds=1.0)
>>> gate.observe(completed=0, now=0.0), gate.observe(completed=500, now=1.0)
(100, 1000)
>>> gate.admits(backlog=999), gate.admits(backlog=1000)
(True, False)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

DEFAULT_WINDOW_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a refused POST is told: ``503`` with ``Retry-After`` and a short JSON reason."""

    retry_after_seconds: int
    reason: str = "overloaded"


class Admission:
    """Tracks the finishing rate from periodic samples and says whether a POST may enter.

    ``observe`` is called a few times per second with the engine's count of finished events;
    ``admits`` is called per webhook POST and only compares two numbers. ``limit_seconds``
    of 0 turns refusing off.
    """

    def __init__(
        self,
        *,
        limit_seconds: float,
        floor_events: int,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        self.limit_seconds = max(0.0, limit_seconds)
        self.floor_events = max(0, floor_events)
        self.window_seconds = window_seconds
        self.rate = 0.0  # events finished per second over the last window
        self.bound = self.floor_events if self.enabled else math.inf
        self._samples: deque[tuple[float, int]] = deque()

    @property
    def enabled(self) -> bool:
        return self.limit_seconds > 0

    @property
    def refusal(self) -> Refusal:
        """The answer a refused POST gets: retry after about the time the bound takes."""
        return Refusal(retry_after_seconds=max(1, math.ceil(self.limit_seconds)))

    def observe(self, *, completed: int, now: float) -> float:
        """Feed the running total of finished events; returns the new bound (in events)."""
        samples = self._samples
        samples.append((now, completed))
        # Keep one sample at or before the window's start, so the slope spans the window.
        while len(samples) > 2 and samples[1][0] <= now - self.window_seconds:
            samples.popleft()
        first_time, first_count = samples[0]
        if now > first_time:
            self.rate = max(0.0, (completed - first_count) / (now - first_time))
        if self.enabled:
            self.bound = max(self.floor_events, math.floor(self.rate * self.limit_seconds))
        return self.bound

    def admits(self, *, backlog: int) -> bool:
        """Whether a new POST may enter with ``backlog`` events acked and not finished."""
        return backlog < self.bound

    def share(self, backlog: int) -> float:
        """How much of the bound ``backlog`` uses (1.0: all of it): stages of one pipeline add
        their shares, since an event waits through each of them in turn.

        >>> gate = Admission(limit_seconds=2.0, floor_events=100)
        >>> gate.share(50), gate.share(100), Admission(limit_seconds=0, floor_events=1).share(9)
        (0.5, 1.0, 0.0)
        """
        if self.bound == math.inf:
            return 0.0
        if self.bound <= 0:
            return math.inf
        return backlog / self.bound
