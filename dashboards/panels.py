"""Small builders shared by both dashboards, on top of grafana-foundation-sdk.

Every panel made here has a title, a description, a unit and Prometheus targets on the
``$datasource`` variable; every selector made by :func:`sel` carries the ``job`` and
``instance`` variables. Panels tied to an alert link to its runbook and draw thresholds at
the alert's levels.

Example::

    timeseries(
        "Inbox depth", "Events waiting for a worker.", "short",
        [Target(f"sum(bot_inbox_pending_events{sel()})", "pending")],
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DashboardLink as LinkModel
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    Panel,
    Threshold,
    ThresholdsMode,
    VariableHide,
    VariableModel,
    VariableRefresh,
    VariableSort,
)

from dashboards.queries import EMPTY_IS_NORMAL

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Grafana has no "rate" unit for events; a custom suffix reads better than "ops".
EVENTS_PER_SECOND = "suffix: events/s"
# Placeholder for the repository's blob URL; Grafana users override the hidden
# `runbook_base` variable (dashboard settings or ?var-runbook_base=...).
RUNBOOK_BASE_DEFAULT = "https://github.com/example/messenger-harness/blob/main/"
RATE = "$__rate_interval"

Steps = Sequence[tuple[float, str]]
PanelBuilder = Builder[Panel]


def sel(*matchers: str) -> str:
    """A label selector with the job and instance variables, plus ``matchers``."""
    return "{" + ", ".join(('job=~"$job"', 'instance=~"$instance"', *matchers)) + "}"


def runbook_url(alert: str) -> str:
    """Runbook link as Grafana resolves it; ``$runbook_base`` is a dashboard variable."""
    return f"${{runbook_base}}docs/runbooks/{alert}.md"


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""
    instant: bool = False


def _targets(targets: Sequence[Target], *, exemplars: bool) -> list[Builder[variants.Dataquery]]:
    built: list[Builder[variants.Dataquery]] = []
    for index, target in enumerate(targets):
        query = (
            prometheus.Dataquery()
            .expr(target.expr)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
        if target.legend:
            query = query.legend_format(target.legend)
        query = query.instant() if target.instant else query.range()
        if exemplars:
            query = query.exemplar(True)
        built.append(query)
    return built


def _thresholds(steps: Steps, base: str) -> dash.ThresholdsConfig:
    levels = [Threshold(value=None, color=base)]
    levels += [Threshold(value=value, color=color) for value, color in steps]
    return dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(levels)


def _links(alerts: Sequence[str]) -> list[Builder[LinkModel]]:
    return [
        dash.DashboardLink(f"Runbook: {alert}").url(runbook_url(alert)).target_blank(True)
        for alert in alerts
    ]


def _describe(description: str, may_be_empty: bool) -> str:
    return f"{description} {EMPTY_IS_NORMAL}" if may_be_empty else description


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[Target],
    *,
    thresholds: Steps = (),
    base_color: str = "green",
    alerts: Sequence[str] = (),
    may_be_empty: bool = False,
    exemplars: bool = False,
    stacked: bool = False,
    width: int = 12,
    height: int = 8,
    max_value: float | None = None,
) -> ts.Panel:
    """A time series panel; thresholds are drawn as dashed lines at the alert levels."""
    panel = (
        ts.Panel()
        .title(title)
        .description(_describe(description, may_be_empty))
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(_targets(targets, exemplars=exemplars))
        .thresholds(_thresholds(thresholds, base_color))
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
                if thresholds
                else common.GraphThresholdsStyleMode.OFF
            )
        )
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .fill_opacity(10)
        .min(0)
        .span(width)
        .height(height)
    )
    if stacked:
        panel = panel.stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL))
    if max_value is not None:
        panel = panel.max(max_value)
    if alerts:
        panel = panel.links(_links(alerts))
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    target: Target,
    *,
    thresholds: Steps = (),
    base_color: str = "green",
    alerts: Sequence[str] = (),
    may_be_empty: bool = False,
    text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO,
    width: int = 4,
    height: int = 4,
) -> stat.Panel:
    """A single-value panel coloured by the alert thresholds (last value of the range)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(_describe(description, may_be_empty))
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(_targets([target], exemplars=False))
        .thresholds(_thresholds(thresholds, base_color))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(text_mode)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(height)
    )
    if alerts:
        panel = panel.links(_links(alerts))
    return panel


def quantiles(metric: str, matchers: Sequence[str] = ()) -> list[Target]:
    """p50/p90/p99 of a classic histogram, each from ``rate(..._bucket[$__rate_interval])``."""
    return [
        Target(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{sel(*matchers)}[{RATE}])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def variables(job_metric: str, runbook_base: str) -> list[Builder[VariableModel]]:
    """``datasource`` (type prometheus), ``job`` (multi, All = the jobs exporting
    ``job_metric``), ``instance`` (multi, All = ``.+`` within those jobs) and the hidden
    ``runbook_base`` that prefixes runbook links."""
    job = (
        dash.QueryVariable("job")
        .label("Job")
        .datasource(DATASOURCE)
        .query(f"label_values({job_metric}, job)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        # No allValue: "All" is then the listed jobs (those exporting job_metric), not ".+",
        # which would also match the other deployable's jobs (the mock on the bot's board).
    )
    instance = (
        dash.QueryVariable("instance")
        .label("Instance")
        .datasource(DATASOURCE)
        .query(f'label_values({job_metric}{{job=~"$job"}}, instance)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )
    runbooks = (
        dash.TextBoxVariable("runbook_base")
        .label("Runbook base URL")
        .description("Prefix of the runbook links (the repository's blob URL).")
        .default_value(runbook_base)
        .hide(VariableHide.HIDE_VARIABLE)
    )
    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        job,
        instance,
        runbooks,
    ]


def bot_job_variable() -> Builder[VariableModel]:
    """``bot_job``: the bot's jobs, for the platform dashboard's bot-side comparison series
    (its ``job`` variable lists the mock's jobs)."""
    return (
        dash.QueryVariable("bot_job")
        .label("Bot job")
        .datasource(DATASOURCE)
        .query("label_values(bot_build_info, job)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )


def dashboard_links(other_uid: str, other_title: str) -> list[Builder[LinkModel]]:
    """The runbook index and the sibling dashboard (keeping time range and variables)."""
    return [
        dash.DashboardLink("Runbooks")
        .type(DashboardLinkType.LINK)
        .url("${runbook_base}docs/runbooks/")
        .icon("doc")
        .target_blank(True),
        dash.DashboardLink(other_title)
        .type(DashboardLinkType.LINK)
        .url(f"/d/{other_uid}")
        .icon("dashboard")
        .keep_time(True)
        .include_vars(False),
    ]


def with_sections(
    board: dash.Dashboard, sections: Sequence[tuple[str, Sequence[Builder[Any]]]]
) -> dash.Dashboard:
    """Add one row per ``(title, panels)`` section, each followed by its panels."""
    for title, panels in sections:
        board = board.with_row(dash.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board
