"""The scrape example and the Grafana provisioning files load what this repo ships."""

from __future__ import annotations

from typing import Any

import yaml
from dashboards_testlib import DASHBOARDS, RULE_FILES, require_binary, run

from dashboards.queries import DASHBOARD_JOBS


def _yaml(relative: str) -> Any:
    return yaml.safe_load((DASHBOARDS / relative).read_text("utf-8"))


def test_promtool_accepts_the_scrape_example_and_its_rule_files() -> None:
    promtool = require_binary("promtool")
    result = run([promtool, "check", "config", "prometheus.yml"], cwd=DASHBOARDS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_example_has_the_job_names_the_rules_and_dashboards_expect() -> None:
    config = _yaml("prometheus.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"messenger-bot", "mock-meta"} == set(DASHBOARD_JOBS.values())
    assert sorted(config["rule_files"]) == sorted(f"rules/{p.name}" for p in RULE_FILES)


def test_grafana_datasource_interval_matches_the_scrape_interval() -> None:
    source = _yaml("provisioning/datasources/prometheus.yml")["datasources"][0]
    assert source["type"] == "prometheus"
    # $__rate_interval is computed from this; it must equal Prometheus's scrape interval.
    assert (
        source["jsonData"]["timeInterval"] == _yaml("prometheus.yml")["global"]["scrape_interval"]
    )


def test_grafana_dashboard_provider_loads_files_read_only() -> None:
    provider = _yaml("provisioning/dashboards/messenger-harness.yml")["providers"][0]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"]
