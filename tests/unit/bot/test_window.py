"""The 24-hour window rule, its 7-day HUMAN_AGENT extension and the retired tags."""

from __future__ import annotations

import pytest

from bot.window import RETIRED_TAGS, decide_window

HOUR_MS = 3600 * 1000
NOW = 1_700_000_000_000


def test_reply_within_24_hours_is_allowed_as_response() -> None:
    decision = decide_window(NOW - 23 * HOUR_MS, NOW)
    assert (decision.allowed, decision.messaging_type, decision.reason) == (
        True,
        "RESPONSE",
        "in_window",
    )


def test_reply_after_24_hours_without_tag_is_refused() -> None:
    decision = decide_window(NOW - 24 * HOUR_MS, NOW)
    assert not decision.allowed
    assert decision.reason == "outside_window"


def test_unknown_last_action_is_outside_window() -> None:
    decision = decide_window(None, NOW)
    assert (decision.allowed, decision.reason) == (False, "outside_window")


def test_human_agent_tag_extends_the_window_to_seven_days() -> None:
    decision = decide_window(NOW - 6 * 24 * HOUR_MS, NOW, "HUMAN_AGENT")
    assert (decision.allowed, decision.messaging_type) == (True, "MESSAGE_TAG")
    assert not decide_window(NOW - 7 * 24 * HOUR_MS, NOW, "HUMAN_AGENT").allowed


def test_other_tags_do_not_extend_the_window() -> None:
    assert not decide_window(NOW - 25 * HOUR_MS, NOW, "SOME_FUTURE_TAG").allowed


@pytest.mark.parametrize("tag", sorted(RETIRED_TAGS))
def test_retired_tags_are_never_allowed_even_inside_the_window(tag: str) -> None:
    decision = decide_window(NOW - 1000, NOW, tag)
    assert (decision.allowed, decision.reason) == (False, "retired_tag")


def test_window_lengths_come_from_the_caller() -> None:
    assert not decide_window(NOW - 61_000, NOW, window_seconds=60).allowed
    assert decide_window(
        NOW - 61_000, NOW, "HUMAN_AGENT", window_seconds=60, human_agent_window_seconds=120
    ).allowed
