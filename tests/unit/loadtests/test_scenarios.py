"""Scenarios: names, what they arm, and the user counts over time."""

from __future__ import annotations

import pytest

from loadtests.scenarios import SCENARIOS, UnknownScenario, get


def test_every_scenario_the_brief_names_exists() -> None:
    assert {"steady", "spike", "slow_send", "failing_send", "storm", "restart"} <= set(SCENARIOS)


def test_unknown_scenario_lists_the_valid_names() -> None:
    with pytest.raises(UnknownScenario, match="steady"):
        get("nope")


def test_steady_holds_the_requested_users_until_the_run_time_ends() -> None:
    steady = get("steady")
    assert [steady.users_at(t, 30, 10) for t in (0, 15, 29.9)] == [10, 10, 10]
    assert steady.users_at(30, 30, 10) is None


def test_spike_multiplies_users_in_the_middle_third_only() -> None:
    spike = get("spike")
    assert [spike.users_at(t, 30, 4) for t in (0, 9.9, 10, 19.9, 20, 29)] == [4, 4, 20, 20, 4, 4]
    assert spike.spawn_rate(4, 1.0) == 20.0


def test_without_a_run_time_users_stay_constant() -> None:
    assert get("spike").users_at(1000, None, 3) == 3


def test_fault_scenarios_arm_the_mock_with_the_send_api_faults_named_in_the_brief() -> None:
    assert any(f.get("latency_ms") for f in get("slow_send").faults)
    assert {f.get("code") for f in get("failing_send").faults} == {2, 613}
    storm = get("storm").chaos or {}
    assert storm["duplicate_probability"] > 0 and storm["reorder_probability"] > 0


def test_only_the_restart_scenario_asks_the_orchestrator_for_a_restart() -> None:
    assert [s.name for s in SCENARIOS.values() if s.restart_bot_at is not None] == ["restart"]
