"""Panel queries as Grafana would send them to Prometheus, and the metric names they read.

Built for tests that run every dashboard query against a real Prometheus::

    ctx = GrafanaContext(scrape_interval=5.0, variables={"job": "messenger-bot"})
    for query in dashboard_queries(load_dashboards()):
        promql = substitute(query.expr, ctx, query.variables)   # e.g. rate(x[20s])
        ...  # GET /api/v1/query?query=promql; demand data unless query.may_be_empty

``metric_names(expr)`` lists the metrics an expression selects (good enough for the PromQL
in this repository: no subqueries with nested strings, no ``@`` modifiers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent
# Ends the description of panels that legitimately show nothing (no errors yet), so a test
# running the queries against Prometheus does not demand data there.
EMPTY_IS_NORMAL = "No data means none happened."
DASHBOARD_FILES = ("bot.json", "platform.json")
ALL = "$__all"  # variable value meaning "All" (Grafana's own marker)
# The scrape job each dashboard is about (job names of dashboards/prometheus.yml).
DASHBOARD_JOBS = {"messenger-bot": "messenger-bot", "messenger-platform": "mock-meta"}


@dataclass(frozen=True)
class Variable:
    """What substitution needs to know about a dashboard template variable."""

    name: str
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, as stored in the dashboard JSON."""

    dashboard_uid: str
    panel_title: str
    ref_id: str
    expr: str
    instant: bool
    may_be_empty: bool
    variables: Mapping[str, Variable] = field(default_factory=dict)


@dataclass(frozen=True)
class GrafanaContext:
    """The values Grafana fills in at query time.

    ``interval`` is ``$__interval``; when ``None`` it is ``range / max_data_points``, never
    below the scrape interval (Grafana's "min interval" on the datasource). Variable values
    are a string, a list (multi-select) or :data:`ALL`; unset variables mean All.
    """

    scrape_interval: float = 15.0
    range_seconds: float = 3600.0
    interval: float | None = None
    max_data_points: int = 1000
    datasource: str = "prometheus"
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    @property
    def step(self) -> float:
        if self.interval is not None:
            return self.interval
        return max(self.scrape_interval, self.range_seconds / self.max_data_points)

    @property
    def rate_interval(self) -> float:
        """Grafana's ``$__rate_interval``: ``max($__interval + scrape, 4 * scrape)``."""
        return max(self.step + self.scrape_interval, 4 * self.scrape_interval)


def load_dashboards(directory: Path = DASHBOARD_DIR) -> list[dict[str, Any]]:
    """The committed dashboard JSON documents."""
    return [json.loads((directory / name).read_text("utf-8")) for name in DASHBOARD_FILES]


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every non-row panel, including those nested in (collapsed) rows."""

    def walk(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            if panel.get("type") != "row":
                yield panel
            yield from walk(panel.get("panels") or [])

    return walk(dashboard.get("panels") or [])


def template_variables(dashboard: Mapping[str, Any]) -> dict[str, Variable]:
    listed = (dashboard.get("templating") or {}).get("list") or []
    return {
        item["name"]: Variable(
            name=item["name"],
            multi=bool(item.get("multi")),
            include_all=bool(item.get("includeAll")),
            all_value=item.get("allValue"),
        )
        for item in listed
    }


def dashboard_queries(dashboards: Iterable[Mapping[str, Any]]) -> list[PanelQuery]:
    """Every Prometheus target of every panel of ``dashboards``, in reading order."""
    queries = []
    for board in dashboards:
        variables = template_variables(board)
        for panel in iter_panels(board):
            for target in panel.get("targets") or []:
                if not target.get("expr") or target.get("hide"):
                    continue
                queries.append(
                    PanelQuery(
                        dashboard_uid=board.get("uid", ""),
                        panel_title=panel.get("title", ""),
                        ref_id=target.get("refId", ""),
                        expr=target["expr"],
                        instant=bool(target.get("instant")) and not target.get("range"),
                        may_be_empty=EMPTY_IS_NORMAL in (panel.get("description") or ""),
                        variables=variables,
                    )
                )
    return queries


def prometheus_duration(seconds: float) -> str:
    """``20s`` or ``1500ms``: a duration Prometheus accepts in a range selector."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


# Grafana's prometheusSpecialRegexEscape: regex metacharacters get a backslash, doubled
# because the value lands inside a PromQL double-quoted string.
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")
_GRAFANA_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def _regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def _format(name: str, fmt: str | None, value: str | Sequence[str], variable: Variable) -> str:
    if value == ALL or (
        isinstance(value, Sequence) and not isinstance(value, str) and ALL in value
    ):
        if variable.all_value is not None:
            return variable.all_value
        raise ValueError(f"variable {name!r} has no allValue; pass explicit values")
    values = [value] if isinstance(value, str) else list(value)
    if fmt in ("raw", "csv"):
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    if fmt == "regex":
        # Grafana's :regex format escapes with one backslash (it is not PromQL-aware).
        escaped = [_GRAFANA_REGEX_SPECIAL.sub(r"\\\g<0>", v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt is None:
        if not (variable.multi or variable.include_all):
            return values[0].replace("\\", "\\\\").replace("'", "\\'")
        escaped = [_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    raise ValueError(f"unsupported variable format {fmt!r} for {name!r}")


_TOKEN = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")


def _macros(ctx: GrafanaContext) -> dict[str, str]:
    return {
        "__rate_interval": prometheus_duration(ctx.rate_interval),
        "__rate_interval_ms": str(round(ctx.rate_interval * 1000)),
        "__interval": prometheus_duration(ctx.step),
        "__interval_ms": str(round(ctx.step * 1000)),
        "__range": prometheus_duration(ctx.range_seconds),
        "__range_s": str(round(ctx.range_seconds)),
        "__range_ms": str(round(ctx.range_seconds * 1000)),
    }


def substitute(
    expr: str, ctx: GrafanaContext, variables: Mapping[str, Variable] | None = None
) -> str:
    """``expr`` with Grafana macros and template variables replaced.

    ``$job``/``${job}``/``${job:regex}``/``[[job]]`` use ``ctx.variables`` (default: All,
    i.e. the variable's allValue); ``$datasource`` becomes ``ctx.datasource``. An unknown
    ``$name`` raises ``ValueError`` so a typo in a dashboard cannot pass silently.
    """
    known = dict(variables or {})
    macros = _macros(ctx)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(5)
        fmt = match.group(2) or match.group(4)
        if name in macros:
            return macros[name]
        if name == "datasource":
            return ctx.datasource
        variable = known.get(name) or (
            Variable(name, multi=True, include_all=True, all_value=".+")
            if name in ctx.variables
            else None
        )
        if variable is None:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")
        return _format(name, fmt, ctx.variables.get(name, ALL), variable)

    return _TOKEN.sub(replace, expr)


# PromQL words that look like identifiers but are not metrics.
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names selected by ``expr``: identifiers that are not functions (followed by
    ``(``), keywords, label names in grouping clauses, label matchers or durations."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGES.sub("[]", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group(0) in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names
