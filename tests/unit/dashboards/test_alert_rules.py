"""Alert and recording rules: conventions, runbooks, promtool check and unit tests."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from dashboards_testlib import (
    RULE_FILES,
    RULE_TESTS,
    RULES_DIR,
    RUNBOOKS,
    alert_rules,
    recording_names,
    require_binary,
    run,
)

from dashboards.queries import load_dashboards

ALERTS = alert_rules()
DASHBOARD_UIDS = {board["uid"] for board in load_dashboards()}
# Labels a rule adds besides severity: they tell its instances apart in tests.
IDENTITY_LABELS = ("severity", "long_window", "short_window")


def _rule_id(rule: dict[str, Any]) -> str:
    return "/".join([rule["alert"], *(rule["labels"].get(k, "") for k in IDENTITY_LABELS)])


def test_rule_files_and_tests_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["bot.rules.yml", "platform.rules.yml"]
    assert len(RULE_TESTS) == len(RULE_FILES)


def test_recording_rules_are_named_level_metric_operations() -> None:
    for name in recording_names():
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name


@pytest.mark.parametrize("rule", ALERTS, ids=_rule_id)
def test_alert_follows_the_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", name), "CamelCase"
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert re.fullmatch(r"\d+[smh]", rule["for"]), "an explicit `for:` a test copy can shorten"
    annotations = rule["annotations"]
    assert annotations["summary"].endswith(".")
    assert len(annotations["description"]) > 30
    assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"
    assert (RUNBOOKS / f"{name}.md").is_file()
    uid = re.match(r"^/d/([\w-]+)\?var-job=\{\{ \$labels\.job \}\}$", annotations["dashboard_url"])
    assert uid and uid.group(1) in DASHBOARD_UIDS


def test_every_runbook_belongs_to_an_alert_and_names_it() -> None:
    names = {rule["alert"] for rule in ALERTS}
    assert {path.stem for path in RUNBOOKS.glob("*.md")} == names
    for name in names:
        text = (RUNBOOKS / f"{name}.md").read_text("utf-8")
        assert text.startswith(f"# {name}\n")
        for section in ("## What it means", "## Confirm", "## Act"):
            assert section in text, (name, section)


def test_runbooks_carry_the_meta_specific_recovery_steps() -> None:
    text = {path.stem: path.read_text("utf-8") for path in RUNBOOKS.glob("*.md")}
    assert "POST /{page-id}/subscribed_apps" in text["MetaWebhooksDisabled"]
    assert "/subscribed_apps" in text["BotWebhookErrors"]
    assert "MESSENGER_APP_SECRET_PREVIOUS" in text["BotWebhookSignatureFailures"]
    assert "2018278" in text["BotDeadLetters"] and "24 hours" in text["BotDeadLetters"]


def test_slo_alerts_cover_the_three_burn_rate_windows() -> None:
    burns = [rule for rule in ALERTS if rule["alert"] == "BotReplyErrorBudgetBurn"]
    windows = {(r["labels"]["long_window"], r["labels"]["short_window"]) for r in burns}
    assert windows == {("1h", "5m"), ("6h", "30m"), ("3d", "6h")}
    assert {r["labels"]["severity"] for r in burns} == {"critical", "warning"}


def _expected_alerts() -> tuple[set[str], set[str]]:
    """(rule ids some test expects to fire, alert names some test expects quiet)."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text("utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                if not case.get("exp_alerts"):
                    quiet.add(case["alertname"])
                for alert in case.get("exp_alerts") or []:
                    labels = alert["exp_labels"]
                    fired.add(
                        "/".join([case["alertname"], *(labels.get(k, "") for k in IDENTITY_LABELS)])
                    )
    return fired, quiet


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    fired, quiet = _expected_alerts()
    rule_ids = {_rule_id(rule) for rule in ALERTS}
    assert rule_ids <= fired, f"no test proves these fire: {sorted(rule_ids - fired)}"
    names = {rule["alert"] for rule in ALERTS}
    assert names <= quiet, f"no test proves these stay quiet: {sorted(names - quiet)}"


def test_promtool_check_rules_passes() -> None:
    promtool = require_binary("promtool")
    result = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(test_file: Any) -> None:
    promtool = require_binary("promtool")
    result = run([promtool, "test", "rules", test_file.name], cwd=RULES_DIR / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
