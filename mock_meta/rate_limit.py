"""Per-page Send API rate limit (Meta: 300 calls/s per Page for text), off by default.

>>> limiter = PageRateLimiter(limit_per_second=2)
>>> [limiter.check("p", now=10.0).allowed for _ in range(3)]
[True, True, False]

A fixed one-second window per page, read on the platform clock: O(1) per call and exact
enough for "does the bot back off on 613". ``usage_pct`` feeds ``x-business-use-case-usage``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    usage_pct: int
    # Seconds until the current window ends (0 when allowed).
    retry_after_seconds: float = 0.0


_ALLOWED_IDLE = RateDecision(allowed=True, usage_pct=0)


class PageRateLimiter:
    """Counts calls per page per clock second; ``limit_per_second=0`` disables it."""

    def __init__(self, limit_per_second: int = 0) -> None:
        self._limit = limit_per_second
        self._windows: dict[str, list[int]] = {}

    @property
    def limit_per_second(self) -> int:
        return self._limit

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def configure(self, limit_per_second: int) -> None:
        if limit_per_second < 0:
            raise ValueError("limit_per_second must be >= 0")
        self._limit = limit_per_second
        self._windows.clear()

    def reset(self) -> None:
        self._windows.clear()

    def check(self, page_id: str, *, now: float) -> RateDecision:
        """Count one call for ``page_id`` at ``now`` (epoch seconds) and say if it may pass."""
        if self._limit <= 0:
            return _ALLOWED_IDLE
        second = int(now)
        window = self._windows.get(page_id)
        if window is None or window[0] != second:
            window = [second, 0]
            self._windows[page_id] = window
        window[1] += 1
        usage = (window[1] * 100) // self._limit
        if window[1] > self._limit:
            return RateDecision(allowed=False, usage_pct=100, retry_after_seconds=second + 1 - now)
        return RateDecision(allowed=True, usage_pct=usage)
