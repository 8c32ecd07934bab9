"""Dashboard-linter style rules on the generated JSON: what an SRE opening it relies on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from dashboards_testlib import RUNBOOKS, alert_rules

from dashboards.queries import (
    EMPTY_IS_NORMAL,
    dashboard_queries,
    iter_panels,
    load_dashboards,
    metric_names,
)

DASHBOARDS = load_dashboards()
PANELS = [(board["uid"], panel) for board in DASHBOARDS for panel in iter_panels(board)]
QUERIES = dashboard_queries(DASHBOARDS)
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
RUNBOOK_LINK = re.compile(r"^\$\{runbook_base\}docs/runbooks/(\w+)\.md$")


def _ids(items: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{uid}:{panel.get('title')}" for uid, panel in items]


def test_dashboards_have_the_expected_uids() -> None:
    assert [board["uid"] for board in DASHBOARDS] == ["messenger-bot", "messenger-platform"]


@pytest.mark.parametrize("board", DASHBOARDS, ids=lambda b: b["uid"])
def test_datasource_job_and_instance_are_template_variables(board: dict[str, Any]) -> None:
    variables = {item["name"]: item for item in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["includeAll"] and variables[name]["multi"]
    # "All" must mean this dashboard's jobs: with allValue ".+" the bot's "Scrape up" panel
    # also showed the mock's target.
    assert "allValue" not in variables["job"] or variables["job"]["allValue"] in (None, "")


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=_ids(PANELS))
def test_every_panel_has_title_description_unit_and_templated_datasource(
    uid: str, panel: dict[str, Any]
) -> None:
    assert panel.get("title")
    assert len(panel.get("description", "")) > 20
    assert panel["fieldConfig"]["defaults"].get("unit")
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel.get("targets"), "a panel without queries shows nothing"
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.panel_title}:{q.ref_id}" for q in QUERIES])
def test_every_query_uses_rate_interval_and_the_job_and_instance_variables(query: Any) -> None:
    ranges = re.findall(r"\[([^\]]*)\]", query.expr)
    assert all(window == "$__rate_interval" for window in ranges), ranges
    if re.search(r"\b(rate|irate|increase|delta|\w+_over_time)\(", query.expr):
        assert ranges, "range functions need a [$__rate_interval] window"

    selected = {}
    for name, matchers in SELECTOR.findall(query.expr):
        # The platform dashboard's bot-side comparison series select the bot's own jobs.
        own = 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers
        assert own or 'job=~"$bot_job"' in matchers, name
        selected[name] = matchers
    assert metric_names(query.expr) <= set(selected), "every metric needs the job selector"


def test_panel_ids_are_unique_per_dashboard() -> None:
    for board in DASHBOARDS:
        ids = [panel["id"] for panel in board["panels"]]
        ids += [child["id"] for panel in board["panels"] for child in panel.get("panels", [])]
        assert len(ids) == len(set(ids))


def test_only_error_panels_without_preset_series_may_be_empty() -> None:
    # The Prometheus proof test demands data from every other panel during a load run.
    marked = {q.panel_title for q in QUERIES if q.may_be_empty}
    redis_only = {"Shards owned per replica", "Shard lag (pending events)"}  # empty on SQLite
    assert marked == {"Webhook error ratio by status", "Handler retries by kind", *redis_only}
    for _, panel in PANELS:
        if panel["title"] in marked:
            assert panel["description"].endswith(EMPTY_IS_NORMAL)


def _runbook_links(panel: dict[str, Any]) -> list[str]:
    return [m.group(1) for link in panel.get("links", []) if (m := RUNBOOK_LINK.match(link["url"]))]


def test_runbook_links_point_at_existing_runbooks_of_existing_alerts() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    linked = {name for _, panel in PANELS for name in _runbook_links(panel)}
    for name in linked:
        assert (RUNBOOKS / f"{name}.md").is_file(), name
    assert linked == alerts, "every alert should be reachable from a panel, and vice versa"


def _threshold_values(panel: dict[str, Any]) -> set[float]:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    return {step["value"] for step in steps if step["value"] is not None}


def test_panels_draw_thresholds_at_their_alert_levels() -> None:
    # Alerts of the form `<expr> > <number>`: the level must appear on a linked panel.
    checked = 0
    for rule in alert_rules():
        match = re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip())
        if not match:
            continue
        level = float(match.group(1))
        if level == 0:
            continue  # "any at all": Grafana steps mean >=, so such panels mark 1 instead
        panels = [panel for _, panel in PANELS if rule["alert"] in _runbook_links(panel)]
        assert any(level in _threshold_values(p) for p in panels), (rule["alert"], level)
        checked += 1
    assert checked >= 10


def test_reply_slo_panels_mark_the_five_second_objective() -> None:
    titles = {panel["title"]: panel for _, panel in PANELS}
    assert 5.0 in _threshold_values(titles["Time to first reply"])
    assert 0.99 in _threshold_values(titles["SLO compliance: replies within 5 s"])
    assert {1.0, 6.0, 14.4} <= _threshold_values(titles["Error budget burn rate"])
    assert 5.0 in _threshold_values(titles["Delivery duration vs the 5 s timeout"])
