"""Proving alerts against a real Prometheus: inject a fault, see it fire, clear it, see it resolve.

``prove(prom, fault, expected, inject, clear)`` times each expected alert from the injection
to ``firing`` and from the clearing to gone (neither pending nor firing), and returns one
``AlertProof`` row per alert; ``proof_table`` prints them. An alert is identified as
``Name/severity`` (plus ``/long_window`` for the burn-rate alerts), the same key
``alert_keys`` builds from the rule files, so a test can check that every rule was proven.

Two proofs share the rules: ``test_prometheus_proof`` (one bot on SQLite) proves every rule
except those reading the Redis inbox's shard metrics (``reads_shard_metrics``), which
``test_prometheus_proof_shards`` (replicas on Redis) proves. Both run ``short_rule_copies``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import queries
from tests.polling import wait_until
from tests.system.prometheus_server import PrometheusClient, shortened_rules

POLL_SECONDS = 0.25
RULES_DIR = Path(queries.DASHBOARD_DIR) / "rules"
# Only the Redis inbox exports these (one series per shard).
SHARD_METRIC_PREFIX = "bot_shard_"


@dataclass
class AlertProof:
    alert: str
    fault: str
    fired_after: float | None = None
    resolved_after: float | None = None


def alert_key(labels: Mapping[str, str]) -> str:
    """``Name/severity[/long_window]``: tells apart the instances of one alert name."""
    parts = [labels["alertname"], labels.get("severity", ""), labels.get("long_window", "")]
    return "/".join(p for p in parts if p)


def alert_keys(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    """The keys of every alerting rule in ``rules`` (recording rules are skipped)."""
    return {
        alert_key({"alertname": rule["alert"], **rule.get("labels", {})})
        for rule in rules
        if "alert" in rule
    }


def load_rules() -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of ``dashboards/rules/*.rules.yml``."""
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def reads_shard_metrics(rule: Mapping[str, Any]) -> bool:
    """True for a rule on the Redis inbox's per-shard metrics (a SQLite bot has none)."""
    return any(name.startswith(SHARD_METRIC_PREFIX) for name in queries.metric_names(rule["expr"]))


def short_rule_copies(workdir: Path) -> list[Path]:
    """Test copies of every rule file in ``workdir``: ``for:`` 2 s, range windows 10 s
    (thresholds as in production), so an alert fires and resolves within seconds."""
    copies = []
    for source in sorted(RULES_DIR.glob("*.rules.yml")):
        copy = workdir / source.name
        copy.write_text(shortened_rules(source, for_duration="2s", window="10s"))
        copies.append(copy)
    return copies


def active_alerts(prom: PrometheusClient) -> dict[str, str]:
    """Key -> ``pending`` or ``firing`` (firing wins when several series share a key)."""
    states: dict[str, str] = {}
    for alert in prom.alerts():
        key = alert_key(alert["labels"])
        if states.get(key) != "firing":
            states[key] = alert["state"]
    return states


class Repeater:
    """Calls ``action`` every ``interval`` seconds on a thread until stopped (bounded)."""

    def __init__(self, action: Callable[[], Any], interval: float, max_calls: int = 5000) -> None:
        self._action = action
        self._interval = interval
        self._max_calls = max_calls
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        for _ in range(self._max_calls):
            if self._stop.is_set():
                return
            self._action()
            # Pacing a load thread, not waiting for async work: the stop event ends it early.
            self._stop.wait(self._interval)


def prove(
    prom: PrometheusClient,
    fault: str,
    expected: Iterable[str],
    inject: Callable[[], Any],
    clear: Callable[[], Any],
    *,
    timeout: float = 90.0,
) -> list[AlertProof]:
    """Inject ``fault``, wait until every ``expected`` alert fires, clear it, wait until gone."""
    rows = {key: AlertProof(key, fault) for key in expected}
    started = time.monotonic()
    inject()
    try:
        _wait(prom, rows, started, timeout, fired=True)
    finally:
        cleared = time.monotonic()
        clear()
    _wait(prom, rows, cleared, timeout, fired=False)
    return list(rows.values())


def _wait(
    prom: PrometheusClient,
    rows: dict[str, AlertProof],
    since: float,
    timeout: float,
    *,
    fired: bool,
) -> None:
    seen: dict[str, str] = {}

    def done() -> bool:
        seen.clear()
        seen.update(active_alerts(prom))
        elapsed = round(time.monotonic() - since, 1)
        for key, row in rows.items():
            if fired and row.fired_after is None and seen.get(key) == "firing":
                row.fired_after = elapsed
            if not fired and row.resolved_after is None and key not in seen:
                row.resolved_after = elapsed
        attribute = "fired_after" if fired else "resolved_after"
        return all(getattr(row, attribute) is not None for row in rows.values())

    what = "firing" if fired else "resolved"
    try:
        wait_until(done, timeout=timeout, interval=POLL_SECONDS, what=what)
    except pytest.fail.Exception:
        waiting = [
            k for k, r in rows.items() if (r.fired_after if fired else r.resolved_after) is None
        ]
        pytest.fail(f"not {what} within {timeout:g} s: {waiting}; active alerts: {seen}")


def proof_table(rows: Iterable[AlertProof]) -> str:
    """A fixed-width table: alert, fault, seconds to fire, seconds to resolve."""
    lines = [f"{'alert':<42} {'fault':<50} {'fire s':>7} {'resolve s':>9}"]
    for row in rows:
        lines.append(
            f"{row.alert:<42} {row.fault:<50} {row.fired_after!s:>7} {row.resolved_after!s:>9}"
        )
    return "\n".join(lines)
