"""The one load shape of the locustfile: it asks the selected scenario how many users to run.

Locust allows a single shape class per locustfile, so every scenario goes through this one;
``use_common_options`` keeps ``-u``, ``-r`` and ``-t`` meaningful.
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtests.scenarios import get


class ScenarioShape(LoadTestShape):
    """``-u`` users at ``-r``/s for ``-t`` seconds, reshaped by the scenario (e.g. a spike)."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        scenario = get(getattr(options, "scenario", "steady"))
        users = int(getattr(options, "num_users", None) or 1)
        run_time = getattr(options, "run_time", None)
        target = scenario.users_at(self.get_run_time(), run_time, users)
        if target is None:
            return None
        requested_rate = float(getattr(options, "spawn_rate", None) or users)
        return target, scenario.spawn_rate(users, requested_rate)
