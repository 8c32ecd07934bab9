"""The per-page Send API limiter behind error 613."""

from __future__ import annotations

import pytest

from mock_meta.rate_limit import PageRateLimiter


def test_off_by_default_lets_everything_through() -> None:
    limiter = PageRateLimiter()
    assert not limiter.enabled
    assert all(limiter.check("p", now=1.0).allowed for _ in range(10_000))


def test_calls_over_the_limit_in_one_second_are_refused() -> None:
    limiter = PageRateLimiter(limit_per_second=3)
    decisions = [limiter.check("p", now=100.2) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].usage_pct == 100
    assert decisions[-1].retry_after_seconds == pytest.approx(0.8)


def test_the_next_second_starts_a_fresh_window() -> None:
    limiter = PageRateLimiter(limit_per_second=1)
    assert limiter.check("p", now=5.0).allowed
    assert not limiter.check("p", now=5.9).allowed
    assert limiter.check("p", now=6.0).allowed


def test_pages_are_limited_independently() -> None:
    limiter = PageRateLimiter(limit_per_second=1)
    assert limiter.check("a", now=1.0).allowed
    assert limiter.check("b", now=1.0).allowed


def test_usage_grows_with_calls() -> None:
    limiter = PageRateLimiter(limit_per_second=4)
    assert [limiter.check("p", now=1.0).usage_pct for _ in range(4)] == [25, 50, 75, 100]


def test_reconfiguring_changes_the_limit_and_rejects_negatives() -> None:
    limiter = PageRateLimiter(limit_per_second=1)
    limiter.configure(0)
    assert not limiter.enabled
    with pytest.raises(ValueError):
        limiter.configure(-1)
