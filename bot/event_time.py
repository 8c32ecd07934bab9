"""An event's time as the bot uses it (pure): epoch milliseconds, never in the future, never 0.

Meta documents ``timestamp`` in epoch milliseconds, but real payloads sometimes carry seconds,
old captures carry ``0`` and hostile ones carry strings or dates years ahead. The time orders
a sender's events and opens the 24-hour window, so each of those is normalised against the
arrival time, and what was done is reported so the edge can count and log it.

>>> arrival = Arrival(received_ms=1_767_225_600_000, future_tolerance_ms=60_000)
>>> normalise_timestamp(1_767_225_599, arrival)
EventTime(ms=1767225599000, fix=<TimeFix.SECONDS: 'seconds'>)
>>> normalise_timestamp(None, arrival).ms == arrival.received_ms
True
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

# Below this an epoch value is in seconds: 10^11 ms is March 1973, 10^11 s the year 5138.
SECONDS_BELOW = 10**11
# Past this a number is not a time (and no longer an exact integer in a float).
_MAX_MS = 2**53


class TimeFix(enum.StrEnum):
    """What was done to a timestamp (``bot_event_timestamps_adjusted_total{reason}``)."""

    SECONDS = "seconds"  # seconds, multiplied to milliseconds
    FUTURE = "future"  # ahead of arrival by more than the tolerance: clamped to arrival
    MISSING = "missing"  # absent or 0: arrival time
    INVALID = "invalid"  # not a usable number (string, bool, negative, NaN, huge): arrival time


@dataclass(frozen=True, slots=True)
class Arrival:
    """When the POST carrying the events arrived, and how far ahead a clock may run."""

    received_ms: int
    future_tolerance_ms: int = 60_000


@dataclass(frozen=True, slots=True)
class EventTime:
    """The normalised time in epoch ms, and the fix applied (None when taken as sent)."""

    ms: int
    fix: TimeFix | None = None


def normalise_timestamp(value: Any, arrival: Arrival) -> EventTime:
    """The time to use for an event whose ``timestamp`` field holds ``value``."""
    if value is None or (type(value) in (int, float) and value == 0):
        return EventTime(arrival.received_ms, TimeFix.MISSING)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return EventTime(arrival.received_ms, TimeFix.INVALID)
    if not (math.isfinite(value) and 0 < value < _MAX_MS):
        return EventTime(arrival.received_ms, TimeFix.INVALID)
    ms, fix = (int(value * 1000), TimeFix.SECONDS) if value < SECONDS_BELOW else (int(value), None)
    if ms > arrival.received_ms + arrival.future_tolerance_ms:
        return EventTime(arrival.received_ms, TimeFix.FUTURE)
    return EventTime(ms, fix)
