"""Graph error classification (reference §6) and bounded full-jitter back-off."""

from __future__ import annotations

import pytest

from bot.retry import ErrorClass, RetryPolicy, backoff_delay, classify_graph_error

T, TH, P, R = ErrorClass.TRANSIENT, ErrorClass.THROTTLED, ErrorClass.PERMANENT, ErrorClass.RISKY


@pytest.mark.parametrize(
    ("status", "code", "subcode", "is_transient", "expected"),
    [
        (None, None, None, False, T),  # network error / timeout
        (502, None, None, False, T),  # 5xx without a Graph envelope
        (500, 1, None, False, T),
        (500, 1, 99, False, T),
        (400, 1, 1357046, False, R),  # may have been sent
        (500, 2, None, True, T),
        (400, 1200, None, False, T),
        (400, 4, None, False, TH),
        (400, 17, None, False, TH),
        (400, 32, None, False, TH),
        (400, 613, None, False, TH),
        (400, 80001, None, False, TH),
        (400, 80006, None, False, TH),
        (400, 10, None, False, P),
        (400, 10, 2018278, False, P),  # outside the window
        (400, 100, 2018001, False, P),  # no matching user
        (400, 190, None, False, P),
        (403, 200, None, False, P),
        (400, 368, None, False, P),
        (400, 551, None, False, P),
        (400, 9999, None, False, P),  # anything else 4xx
        (404, None, None, False, P),
        (400, 9999, None, True, T),  # unknown code flagged transient by Graph
    ],
)
def test_graph_errors_are_classified_per_reference_table(
    status: int | None,
    code: int | None,
    subcode: int | None,
    is_transient: bool,
    expected: ErrorClass,
) -> None:
    assert classify_graph_error(status, code, subcode, is_transient) is expected


def test_only_transient_and_throttled_are_retryable() -> None:
    assert [c for c in ErrorClass if c.retryable] == [T, TH]


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    delays = [backoff_delay(n, base=0.1, cap=1.0, random=lambda: 1.0) for n in range(1, 7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_scales_the_whole_interval() -> None:
    assert backoff_delay(3, base=0.1, cap=1.0, random=lambda: 0.0) == 0.0
    assert backoff_delay(3, base=0.1, cap=1.0, random=lambda: 0.5) == pytest.approx(0.2)


def test_policy_stops_at_max_attempts_and_never_retries_permanent_or_risky() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=0.1, cap_seconds=1.0)
    assert policy.should_retry(T, 1) and policy.should_retry(TH, 2)
    assert not policy.should_retry(T, 3)
    assert not policy.should_retry(P, 1)
    assert not policy.should_retry(R, 1)


def test_throttled_backoff_is_longer_but_bounded() -> None:
    policy = RetryPolicy(max_attempts=9, base_seconds=0.1, cap_seconds=1.0, random=lambda: 1.0)
    assert policy.delay(TH, 1) > policy.delay(T, 1)
    assert max(policy.delay(TH, n) for n in range(1, 9)) == pytest.approx(2.0)
