"""The delivery profile: Meta's documented defaults, and overrides that refuse typos."""

from __future__ import annotations

import pytest

from mock_meta.retry_profile import PROFILES, ProfileError, RetryProfile


def test_default_profile_is_metas_documented_behaviour() -> None:
    profile = RetryProfile()
    assert profile.name == "meta-2026-05"
    assert profile.timeout_seconds == 5.0
    assert profile.alert_after == 15 * 60
    assert profile.disable_after == 60 * 60


@pytest.mark.parametrize(
    ("status", "exact", "any_2xx"),
    [
        (200, True, True),
        (201, False, True),
        (204, False, True),
        (301, False, False),
        (302, False, False),
        (404, False, False),
        (500, False, False),
    ],
)
def test_success_rule(status: int, exact: bool, any_2xx: bool) -> None:
    assert RetryProfile().is_success(status) is exact
    assert RetryProfile(success="any_2xx").is_success(status) is any_2xx


def test_immediate_retries_then_spaced_delays_then_every_ten_minutes() -> None:
    profile = RetryProfile()
    delays = [profile.delay_after(n) for n in range(1, 13)]
    assert delays == [0, 0, 0, 1, 5, 30, 120, 300, 600, 600, 600, 600]
    assert [profile.is_immediate(n) for n in (1, 3, 4)] == [True, True, False]


def test_loading_a_partial_dict_keeps_the_other_defaults() -> None:
    profile = RetryProfile.from_dict({"timeout_seconds": 20, "retry_delays": [2, 4]})
    assert profile.timeout_seconds == 20.0
    assert profile.retry_delays == (2.0, 4.0)
    assert profile.immediate_retries == 3


def test_a_named_base_profile_can_be_overridden() -> None:
    profile = RetryProfile.from_dict({"base": "meta-legacy-20s", "immediate_retries": 1})
    assert profile.timeout_seconds == 20.0
    assert profile.immediate_retries == 1
    assert set(PROFILES) >= {"meta-2026-05", "meta-legacy-20s", "meta-any-2xx"}


def test_round_trips_through_a_dict() -> None:
    profile = RetryProfile(success="any_2xx", retry_delays=(3.0,))
    assert RetryProfile.from_dict(profile.to_dict()) == profile


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": 5},
        {"base": "nope"},
        {"success": "3xx"},
        {"timeout_seconds": 0},
        {"timeout_seconds": "5"},
        {"retry_delays": "1,2"},
        {"retry_delays": [-1]},
        {"immediate_retries": 1.5},
        {"alert_after": 7200},
        {"give_up_after": 0},
    ],
)
def test_bad_values_are_refused_with_a_profile_error(bad: dict[str, object]) -> None:
    with pytest.raises(ProfileError):
        RetryProfile.from_dict(bad)
