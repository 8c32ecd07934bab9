"""Run summary: reading the mock's journal and /metrics, and the table the demo prints."""

from __future__ import annotations

import re

import pytest

from loadtests.summary import (
    JournalCounts,
    RunSummary,
    counter_increase,
    duplicates_skipped,
    format_progress,
    format_table,
    parse_metrics,
    send_api_retries,
)

JOURNAL = {
    "actions": 12,
    "answered": 10,
    "unanswered": 2,
    "extra_replies": 1,
    "deliveries": {"delivered": 12},
    "sends": 15,
    "sends_by_error_code": {"none": 11, "2": 3, "613": 1},
    "retries": 4,
    "journal_dropped": 0,
}


def test_journal_counts_map_unanswered_to_missing_and_extra_replies_to_duplicates() -> None:
    counts = JournalCounts.from_summary(JOURNAL)
    assert counts == JournalCounts(
        actions=12, replied=10, missing=2, duplicated=1, webhook_retries=4, send_api_errors=4
    )


def test_journal_counts_keep_undelivered_apart_and_are_unsettled_while_actions_fly() -> None:
    counts = JournalCounts.from_summary(
        {**JOURNAL, "undelivered": 5, "in_flight": 1, "replies_held": 0}
    )
    assert (counts.missing, counts.undelivered, counts.settled) == (2, 5, False)
    assert JournalCounts.from_summary(JOURNAL).settled


def test_a_journal_summary_without_reply_counts_is_refused() -> None:
    with pytest.raises(KeyError):
        JournalCounts.from_summary({"sends": 3})


BOT_METRICS = """\
# HELP bot_send_api_retries_total Send API attempts retried after a transient failure.
# TYPE bot_send_api_retries_total counter
bot_send_api_retries_total{error_code="2"} 3.0
bot_send_api_retries_total{error_code="613"} 2.0
bot_send_api_retries_total{error_code="other"} 0.0
"""


def test_send_api_retries_sum_every_error_code() -> None:
    assert send_api_retries(parse_metrics(BOT_METRICS)) == 5.0


def test_duplicates_skipped_sum_every_event_type() -> None:
    text = (
        "# TYPE bot_events_duplicate_total counter\n"
        'bot_events_duplicate_total{event_type="message"} 4.0\n'
        'bot_events_duplicate_total{event_type="echo"} 2.0\n'
    )
    assert duplicates_skipped(parse_metrics(text)) == 6.0


def test_counter_increase_counts_from_zero_after_a_restart() -> None:
    assert counter_increase(3.0, 10.0) == 7
    assert counter_increase(10.0, 4.0) == 4  # the process restarted: its counter began again
    assert counter_increase(None, 4.0) == 4
    assert counter_increase(3.0, None) is None


def test_the_table_shows_rate_latencies_failures_and_the_handshake() -> None:
    run = RunSummary(
        scenario="steady",
        duration_seconds=30.0,
        users=10,
        events_sent=300,
        events_per_second=10.0,
        replies_measured=298,
        reply_p50_seconds=0.12,
        reply_p95_seconds=0.25,
        reply_p99_seconds=0.5,
        turns=300,
        failed_turns=2,
        replies_missing=0,
        replies_duplicated=0,
        handshake="ok (HTTP 200)",
    )
    table = format_table(run)
    assert "300 (10.0/s)" in table
    assert "p50 0.120 s  p95 0.250 s  p99 0.500 s" in table
    assert "2 of 300 (0.67%)" in table
    assert "handshake" in table and "ok (HTTP 200)" in table
    assert "slo" in table and "met" in table


def test_unknown_values_print_as_na_and_violations_are_listed() -> None:
    run = RunSummary(scenario="storm", violations=["replies_duplicated: observed 3, limit 0"])
    table = format_table(run)
    assert re.search(r"^replies missing +n/a$", table, re.MULTILINE)
    assert "BROKEN" in table and "replies_duplicated: observed 3, limit 0" in table


def test_summary_survives_a_json_round_trip() -> None:
    run = RunSummary(scenario="spike", replies_missing=0, violations=["x"])
    assert RunSummary.from_json(run.to_json()) == run


def test_progress_line_names_elapsed_users_sent_replies_and_p95() -> None:
    line = format_progress(elapsed=12.2, users=5, sent=60, replies=58, failures=0, p95=0.2)
    assert line == "[progress]    12s users=5 sent=60 replies=58 failures=0 p95=0.200s"
    assert "p95=n/a" in format_progress(0, 0, 0, 0, 0, None)
