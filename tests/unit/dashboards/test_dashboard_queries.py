"""dashboards.queries: panel walking, Grafana substitution and metric-name extraction."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboards_testlib import require_binary, run

from dashboards.queries import (
    ALL,
    DASHBOARD_JOBS,
    EMPTY_IS_NORMAL,
    GrafanaContext,
    Variable,
    dashboard_queries,
    load_dashboards,
    metric_names,
    prometheus_duration,
    substitute,
)

MULTI = {
    "job": Variable("job", multi=True, include_all=True, all_value=".+"),
    "instance": Variable("instance", multi=True, include_all=True, all_value=".+"),
}


def _panel(title: str, expr: str, description: str = "A panel.") -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "targets": [{"refId": "A", "expr": expr}],
    }


def test_rate_interval_is_grafanas_formula() -> None:
    assert GrafanaContext(scrape_interval=5).rate_interval == 20  # 4 x scrape wins
    assert GrafanaContext(scrape_interval=15, interval=60).rate_interval == 75  # interval + scrape
    # $__interval defaults to range / max data points, never below the scrape interval.
    assert GrafanaContext(scrape_interval=5, range_seconds=86400).step == 86.4


def test_substitute_fills_macros_as_prometheus_durations() -> None:
    ctx = GrafanaContext(scrape_interval=5, range_seconds=1800, interval=7.5)
    out = substitute(
        "rate(x[$__rate_interval]) $__interval $__range $__interval_ms $__range_s", ctx
    )
    assert out == "rate(x[20s]) 7500ms 1800s 7500 1800"
    assert prometheus_duration(0.25) == "250ms"


def test_all_uses_the_variables_all_value() -> None:
    out = substitute('x{job=~"$job", instance=~"${instance}"}', GrafanaContext(), MULTI)
    assert out == 'x{job=~".+", instance=~".+"}'


def test_selected_values_are_regex_escaped_for_promql_strings() -> None:
    ctx = GrafanaContext(variables={"job": "messenger-bot", "instance": ["127.0.0.1:8000", "b"]})
    out = substitute('x{job=~"$job", instance=~"$instance"}', ctx, MULTI)
    assert out == 'x{job=~"messenger-bot", instance=~"(127\\\\.0\\\\.0\\\\.1:8000|b)"}'


def test_explicit_formats_and_legacy_brackets() -> None:
    ctx = GrafanaContext(variables={"job": ["a.b", "c"]})
    assert substitute("${job:regex}", ctx, MULTI) == "(a\\.b|c)"
    assert substitute("${job:pipe}", ctx, MULTI) == "a.b|c"
    assert substitute("[[job]]", ctx, MULTI) == "(a\\\\.b|c)"
    assert substitute("$datasource", GrafanaContext(datasource="prom"), MULTI) == "prom"
    assert substitute("${job:raw}", GrafanaContext(variables={"job": ALL}), MULTI) == ".+"


def test_unknown_variable_is_an_error_not_a_silent_leftover() -> None:
    with pytest.raises(ValueError, match=r"\$jbo"):
        substitute('x{job=~"$jbo"}', GrafanaContext(), MULTI)


def test_queries_are_found_in_rows_and_collapsed_rows() -> None:
    board = {
        "uid": "u",
        "templating": {
            "list": [{"name": "job", "multi": True, "includeAll": True, "allValue": ".+"}]
        },
        "panels": [
            {"type": "row", "title": "open", "panels": []},
            _panel("top", "a"),
            {
                "type": "row",
                "title": "closed",
                "collapsed": True,
                "panels": [_panel("nested", "b", f"Errors. {EMPTY_IS_NORMAL}")],
            },
        ],
    }
    queries = dashboard_queries([board])
    assert [(q.panel_title, q.expr, q.may_be_empty) for q in queries] == [
        ("top", "a", False),
        ("nested", "b", True),
    ]
    assert queries[0].variables["job"].all_value == ".+"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le, job) (rate(a_bucket{le=~"5(\\\\.0)?"}[5m]))', {"a_bucket"}),
        ("sum(rate(a_total[1m])) by (code) / ignoring (code) group_left sum(b)", {"a_total", "b"}),
        ("histogram_quantile(0.99, x) > 2.5e0 and on (job) y offset 5m", {"x", "y"}),
        ('time() - max by (instance) (z{instance=~"$instance"})', {"z"}),
        ('up{job="a"} == 0 or absent(up{job="a"})', {"up"}),
        (
            "job:x_slow:ratio_rate1h > (14.4 * (1 - 0.99)) unless bool w",
            {"job:x_slow:ratio_rate1h", "w"},
        ),
        ("(sum(rate(a[$__rate_interval])) or vector(0)) / count(b)", {"a", "b"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
    ],
)
def test_metric_names_finds_only_selected_metrics(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_committed_query_substitutes_to_promql_that_prometheus_parses(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = []
    for number, query in enumerate(dashboard_queries(load_dashboards())):
        ctx = GrafanaContext(
            scrape_interval=5, variables={"job": DASHBOARD_JOBS[query.dashboard_uid]}
        )
        promql = substitute(query.expr, ctx, query.variables)
        assert "$" not in promql, promql
        assert set(re.findall(r"\[([^\]]*)\]", promql)) <= {"20s"}, promql
        rules.append({"record": f"dashboard:query:{number}", "expr": promql})
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
