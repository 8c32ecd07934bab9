"""Event timestamps normalised against the arrival time (pure, bot.event_time + parse_envelope)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.event_time import Arrival, EventTime, TimeFix, normalise_timestamp
from bot.events import PayloadError, parse_envelope

NOW_MS = 1_767_225_600_000
ARRIVAL = Arrival(received_ms=NOW_MS, future_tolerance_ms=60_000)


def test_a_millisecond_timestamp_is_taken_as_sent() -> None:
    assert normalise_timestamp(NOW_MS - 5_000, ARRIVAL) == EventTime(NOW_MS - 5_000)


def test_a_seconds_timestamp_becomes_milliseconds() -> None:
    assert normalise_timestamp(NOW_MS // 1000 - 5, ARRIVAL) == EventTime(
        NOW_MS - 5_000, TimeFix.SECONDS
    )


def test_a_fractional_seconds_timestamp_keeps_its_milliseconds() -> None:
    assert normalise_timestamp(1_767_225_599.25, ARRIVAL).ms == NOW_MS - 750


def test_a_timestamp_within_the_tolerance_ahead_is_kept() -> None:
    assert normalise_timestamp(NOW_MS + 59_000, ARRIVAL) == EventTime(NOW_MS + 59_000)


@pytest.mark.parametrize(
    "value",
    [NOW_MS + 10 * 365 * 86_400_000, NOW_MS // 1000 + 10 * 365 * 86_400],
    ids=["ms", "seconds"],
)
def test_a_timestamp_years_ahead_is_clamped_to_arrival(value: int) -> None:
    # One event dated 10 years ahead would otherwise open that user's window until then.
    assert normalise_timestamp(value, ARRIVAL) == EventTime(NOW_MS, TimeFix.FUTURE)


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        (None, TimeFix.MISSING),
        (0, TimeFix.MISSING),
        (0.0, TimeFix.MISSING),
        ("1767225600000", TimeFix.INVALID),
        (True, TimeFix.INVALID),
        (-5, TimeFix.INVALID),
        (float("nan"), TimeFix.INVALID),
        (float("inf"), TimeFix.INVALID),
        (2**60, TimeFix.INVALID),
        ({"ms": 1}, TimeFix.INVALID),
    ],
)
def test_an_unusable_timestamp_falls_back_to_arrival(value: Any, fix: TimeFix) -> None:
    assert normalise_timestamp(value, ARRIVAL) == EventTime(NOW_MS, fix)


def envelope(*items: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": "1", "messaging": list(items)}]}


def test_parse_envelope_normalises_each_event_when_given_the_arrival() -> None:
    body = envelope({"timestamp": NOW_MS // 1000}, {}, {"timestamp": NOW_MS - 1})
    events = parse_envelope(body, arrival=ARRIVAL)
    assert [(e.timestamp_ms, e.time_fix) for e in events] == [
        (NOW_MS, TimeFix.SECONDS),
        (NOW_MS, TimeFix.MISSING),
        (NOW_MS - 1, None),
    ]


def test_parse_envelope_refuses_more_events_than_the_cap_before_parsing_any() -> None:
    # Items that would each fail to parse: the count is checked first, so 413 wins over 400.
    body = {"object": "page", "entry": [{"id": "1", "messaging": ["x"] * 1001}]}
    with pytest.raises(PayloadError) as caught:
        parse_envelope(body, max_events=1000)
    assert caught.value.status == 413
    assert "1000" in caught.value.reason


def test_the_cap_counts_messaging_and_standby_across_entries() -> None:
    entry = {"id": "1", "messaging": [{}] * 300, "standby": [{}] * 200}
    assert len(parse_envelope({"object": "page", "entry": [entry, entry]}, max_events=1000)) == 1000
    with pytest.raises(PayloadError):
        parse_envelope(
            {"object": "page", "entry": [entry, entry, {"messaging": [{}]}]}, max_events=1000
        )
