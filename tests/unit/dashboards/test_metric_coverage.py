"""Every metric a panel or rule reads is one the bot or the mock actually exports."""

from __future__ import annotations

from dashboards_testlib import (
    PROMETHEUS_SERIES,
    all_rules,
    exported_metric_names,
    recording_names,
)

from dashboards.queries import dashboard_queries, load_dashboards, metric_names


def test_catalogue_includes_labelled_metrics_that_have_no_samples_yet() -> None:
    names = exported_metric_names()
    # Labelled, not pre-initialised: only the family knows these exist before traffic.
    assert "http_server_request_duration_seconds_bucket" in names
    assert "mock_meta_user_actions_total" in names
    assert "bot_webhook_events_received_total" in names
    assert "bot_webhook_events_received" not in names


def test_every_dashboard_metric_is_exported() -> None:
    known = exported_metric_names() | PROMETHEUS_SERIES
    used = {
        (query.dashboard_uid, query.panel_title, name)
        for query in dashboard_queries(load_dashboards())
        for name in metric_names(query.expr)
    }
    unknown = sorted(item for item in used if item[2] not in known)
    assert not unknown, f"panels read metrics nobody exports: {unknown}"
    assert len({name for *_, name in used}) > 30


def test_every_rule_metric_is_exported_or_recorded() -> None:
    known = exported_metric_names() | recording_names() | PROMETHEUS_SERIES
    unknown = sorted(
        (rule.get("alert") or rule["record"], name)
        for rule in all_rules()
        for name in metric_names(rule["expr"])
        if name not in known
    )
    assert not unknown, f"rules read metrics nobody exports: {unknown}"


def test_every_recording_rule_is_used_by_an_alert() -> None:
    used = {name for rule in all_rules() if "alert" in rule for name in metric_names(rule["expr"])}
    assert recording_names() <= used
