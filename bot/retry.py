"""Retry policy (pure): Graph error classification and exponential back-off with full jitter.

>>> classify_graph_error(500, 2, None, True)
<ErrorClass.TRANSIENT: 'transient'>
>>> classify_graph_error(400, 1, 1357046, False)
<ErrorClass.RISKY: 'risky'>
>>> policy = RetryPolicy(max_attempts=4, base_seconds=0.2, cap_seconds=5.0, random=lambda: 1.0)
>>> policy.delay(ErrorClass.TRANSIENT, 3)
0.8
"""

from __future__ import annotations

import enum
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field


class ErrorClass(enum.StrEnum):
    """What to do about a failed Send API call (reference §6 "Retry" column)."""

    TRANSIENT = "transient"  # retry with back-off
    THROTTLED = "throttled"  # retry later: longer, still bounded, back-off
    PERMANENT = "permanent"  # fix the request, token or user state first: never retried
    RISKY = "risky"  # the message may have been sent: retrying risks a duplicate

    @property
    def retryable(self) -> bool:
        return self in (ErrorClass.TRANSIENT, ErrorClass.THROTTLED)


TRANSIENT_CODES = frozenset({1, 2, 1200})
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80006})
PERMANENT_CODES = frozenset({10, 100, 190, 200, 368, 551})
# "Received invalid JSON reply": Graph may have delivered the message anyway.
RISKY_SUBCODES = frozenset({(1, 1357046)})
# Throttle-family codes whose subcode says "do not repeat this" (duplicate opt-in,
# marketing frequency cap): retrying cannot succeed.
PERMANENT_SUBCODES = frozenset({(613, 1893016), (4, 2018354)})


def classify_graph_error(
    http_status: int | None,
    code: int | None,
    subcode: int | None = None,
    is_transient: bool = False,
) -> ErrorClass:
    """Classify one failed call.

    ``http_status`` and ``code`` are both ``None`` for network errors and timeouts; ``code`` is
    ``None`` when the answer had no Graph error envelope.
    """
    if code is None:
        if http_status is None or http_status >= 500 or http_status == 408:
            return ErrorClass.TRANSIENT
        if http_status == 429:
            return ErrorClass.THROTTLED
        return ErrorClass.PERMANENT
    if (code, subcode) in RISKY_SUBCODES:
        return ErrorClass.RISKY
    if (code, subcode) in PERMANENT_SUBCODES:
        return ErrorClass.PERMANENT
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if code in THROTTLE_CODES:
        return ErrorClass.THROTTLED
    if code in PERMANENT_CODES:
        return ErrorClass.PERMANENT
    # Unknown codes: trust Graph's own hint, then the status family.
    if is_transient or (http_status is not None and http_status >= 500):
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def backoff_delay(
    attempt: int, *, base: float, cap: float, random: Callable[[], float] = _random.random
) -> float:
    """Full-jitter delay before retry number ``attempt`` (1-based): U(0, min(cap, base·2^(n-1)))."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return random() * ceiling


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them.

    Throttled calls wait ``throttle_factor`` times longer (rate windows are seconds long),
    still bounded by ``throttle_cap_seconds``.
    """

    max_attempts: int
    base_seconds: float
    cap_seconds: float
    throttle_factor: float = 5.0
    throttle_cap_seconds: float | None = None  # defaults to 2 x cap_seconds
    random: Callable[[], float] = field(default=_random.random, compare=False)

    def should_retry(self, error_class: ErrorClass, attempt: int) -> bool:
        """After failed attempt number ``attempt`` (1-based), is another one allowed?"""
        return error_class.retryable and attempt < self.max_attempts

    def delay(self, error_class: ErrorClass, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if error_class is ErrorClass.THROTTLED:
            cap = self.throttle_cap_seconds
            if cap is None:
                cap = 2 * self.cap_seconds
            return backoff_delay(
                attempt, base=self.base_seconds * self.throttle_factor, cap=cap, random=self.random
            )
        return backoff_delay(
            attempt, base=self.base_seconds, cap=self.cap_seconds, random=self.random
        )
