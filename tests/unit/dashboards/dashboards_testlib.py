"""Shared helpers for the dashboards tests: paths, rule loading, the metric catalogue.

``require_binary`` mirrors ``tests/conftest.py``: ``tests`` is not a package, so
``from tests.conftest import ...`` only works under ``python -m pytest`` run from the root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics
from mock_meta.metrics import MockMetrics

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = ROOT / "dashboards"
RULES_DIR = DASHBOARDS / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
# Series Prometheus itself adds to every scrape target; not in any registry.
PROMETHEUS_SERIES = frozenset({"up"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def require_binary(name: str) -> str:
    """Path of ``name``; skip without it, but fail when ``REQUIRE_SERVICES=1`` (CI)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install the package that provides it)"
    if os.environ.get("REQUIRE_SERVICES", "") not in ("", "0", "false", "no"):
        pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def exported_metric_names() -> set[str]:
    """Every sample name the bot and the mock can export, observed yet or not.

    Built from metric families on fresh registries, so labelled metrics with no children
    yet (e.g. the HTTP histogram before the first request) still count.
    """
    registry = CollectorRegistry()
    BotMetrics(registry)
    MockMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def load_rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups.extend(yaml.safe_load(path.read_text("utf-8"))["groups"])
    return groups


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in load_rule_groups() for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def recording_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
