"""SLO gate: which thresholds a run breaks, as the exit code and the table will report."""

from __future__ import annotations

from loadtests.slo import SloThresholds, check
from loadtests.summary import RunSummary


def _healthy(**changes: object) -> RunSummary:
    run = RunSummary(
        scenario="steady",
        replies_measured=100,
        reply_p95_seconds=0.4,
        turns=100,
        failed_turns=0,
        replies_missing=0,
        replies_duplicated=0,
    )
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def test_a_healthy_run_meets_the_default_slo() -> None:
    assert check(_healthy(), SloThresholds()) == []


def test_slow_p95_breaks_the_reply_latency_threshold() -> None:
    violations = check(_healthy(reply_p95_seconds=6.0), SloThresholds(reply_p95_seconds=5.0))
    assert [v.name for v in violations] == ["reply_p95_seconds"]
    assert str(violations[0]) == "reply_p95_seconds: observed 6, limit 5"


def test_failure_ratio_above_the_limit_is_a_violation_and_at_the_limit_is_not() -> None:
    slo = SloThresholds(max_failure_ratio=0.05)
    assert check(_healthy(failed_turns=5), slo) == []
    assert [v.name for v in check(_healthy(failed_turns=6), slo)] == ["failure_ratio"]


def test_any_missing_or_duplicated_reply_breaks_the_default_slo() -> None:
    run = _healthy(replies_missing=1, replies_duplicated=2)
    names = [v.name for v in check(run, SloThresholds())]
    assert names == ["replies_missing", "replies_duplicated"]


def test_tolerated_duplicates_can_be_configured() -> None:
    assert check(_healthy(replies_duplicated=2), SloThresholds(max_duplicate_replies=2)) == []


def test_an_unreadable_journal_fails_the_run_instead_of_passing_silently() -> None:
    violations = check(_healthy(replies_missing=None), SloThresholds())
    assert [v.name for v in violations] == ["replies_missing"]
    assert "unknown" in str(violations[0])


def test_a_run_without_any_measured_reply_fails() -> None:
    violations = check(_healthy(replies_measured=0, reply_p95_seconds=None), SloThresholds())
    assert [v.name for v in violations] == ["replies_measured"]
