"""Named load scenarios: what the mock is armed with and how many users run when.

A scenario is data; ``users.py`` arms the mock with it at test start (once, from the master)
and the orchestrator (``main_job``) performs what locust cannot, such as restarting the bot.

>>> get("spike").users_at(elapsed=15, run_time=30, users=10)
50
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnknownScenario(ValueError):
    """Raised for a scenario name that is not in ``SCENARIOS``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
        self.name = name


@dataclass(frozen=True)
class Scenario:
    """One way of loading the loop. Faults and chaos use the mock's control API shapes
    (``POST /_mock/faults`` bodies, a ``PUT /_mock/chaos`` body)."""

    name: str
    description: str
    faults: tuple[Mapping[str, Any], ...] = ()
    chaos: Mapping[str, Any] | None = None
    # >1: the middle third of the run holds ``users * spike_factor`` users.
    spike_factor: int = 1
    # The orchestrator restarts the bot at this fraction of the run time (None: never).
    restart_bot_at: float | None = None

    def users_at(self, elapsed: float, run_time: float | None, users: int) -> int | None:
        """Users wanted ``elapsed`` seconds in; None once the run is over."""
        if run_time is not None and elapsed >= run_time:
            return None
        if self.spike_factor <= 1 or run_time is None:
            return users
        third = run_time / 3
        return users * self.spike_factor if third <= elapsed < 2 * third else users

    def spawn_rate(self, users: int, requested: float) -> float:
        """A spike arrives at once; other scenarios ramp at the requested rate."""
        if self.spike_factor > 1:
            return max(requested, float(users * self.spike_factor))
        return requested


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("steady", "constant conversation traffic: each user sends, waits, repeats"),
        Scenario(
            "spike",
            "steady, then five times the users for the middle third of the run",
            spike_factor=5,
        ),
        Scenario(
            "slow_send",
            "the Send API answers slowly: +1.5 s on half of the calls",
            faults=({"latency_ms": 1500, "probability": 0.5},),
        ),
        Scenario(
            "failing_send",
            "the Send API fails transiently: 5xx code 2 and 613 rate limits the bot must retry",
            faults=(
                {"code": 2, "http_status": 503, "probability": 0.15},
                {"code": 613, "http_status": 400, "probability": 0.1},
            ),
        ),
        Scenario(
            "storm",
            "webhooks duplicated and reordered: the bot must reply exactly once per message",
            chaos={"seed": 7, "duplicate_probability": 0.3, "reorder_probability": 0.3},
        ),
        Scenario(
            "restart",
            "steady traffic; the orchestrator restarts the bot half way through",
            restart_bot_at=0.5,
        ),
    )
}


def get(name: str) -> Scenario:
    """The scenario called ``name``; raises ``UnknownScenario`` listing the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenario(name) from None
