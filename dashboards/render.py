"""Pictures of the dashboards without Grafana: every panel's real queries over a time range,
drawn with matplotlib at the panel's grid position (rows, time series with their threshold
lines, stats coloured by their thresholds).

    python -m dashboards.render --prometheus http://127.0.0.1:9090 --minutes 10

The system proof renders both dashboards from its own Prometheus run, which is where the
pictures in ``docs/dashboards/`` come from.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dashboards import queries

# Grafana's grid is 24 columns wide; a grid unit is about 30 px tall.
_COLUMNS = 24
_INCHES_PER_ROW = 0.42
_WIDTH_INCHES = 24.0
_HEADER_INCHES = 0.7
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_COLORS = {"green": "#56a64b", "yellow": "#e0b400", "orange": "#ff9830", "red": "#e02f44"}


@dataclass(frozen=True)
class Series:
    """One result series of a range query: its labels, timestamps and values."""

    labels: Mapping[str, str]
    times: Sequence[float]
    values: Sequence[float]


Fetch = Callable[[str, float, float, float], list[Series]]


def prometheus_fetch(base_url: str) -> Fetch:
    """``fetch(promql, start, end, step)`` against Prometheus's ``/api/v1/query_range``."""

    def fetch(promql: str, start: float, end: float, step: float) -> list[Series]:
        answer = httpx.get(
            f"{base_url}/api/v1/query_range",
            params={"query": promql, "start": start, "end": end, "step": step},
            timeout=30.0,
            trust_env=False,
        ).json()
        if answer.get("status") != "success":
            raise ValueError(f"{answer.get('error')}: {promql}")
        return [
            Series(
                labels=item["metric"],
                times=[float(t) for t, _ in item["values"]],
                values=[float(v) for _, v in item["values"]],
            )
            for item in answer["data"]["result"]
        ]

    return fetch


def render_dashboard(
    board: Mapping[str, Any],
    fetch: Fetch,
    ctx: queries.GrafanaContext,
    *,
    end: float,
    path: Path,
) -> None:
    """Draw every panel of ``board`` from ``ctx.range_seconds`` before ``end`` into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Rows too (iter_panels skips them): they title the sections.
    panels = [p for top in board["panels"] for p in (top, *(top.get("panels") or []))]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = rows * _INCHES_PER_ROW + _HEADER_INCHES
    figure = plt.figure(figsize=(_WIDTH_INCHES, height), dpi=72)
    figure.suptitle(
        f"{board['title']}: the last {ctx.range_seconds / 60:.0f} min",
        fontsize=16,
        y=1 - 0.25 / height,
    )
    variables = queries.template_variables(board)
    start = end - ctx.range_seconds
    for panel in panels:
        axes = figure.add_axes(_rect(panel["gridPos"], height, row=panel["type"] == "row"))
        if panel["type"] == "row":
            _row(axes, panel["title"])
            continue
        results = [
            (
                target,
                fetch(queries.substitute(target["expr"], ctx, variables), start, end, ctx.step),
            )
            for target in panel.get("targets") or []
            if target.get("expr")
        ]
        if panel["type"] == "stat":
            _stat(axes, panel, results)
        else:
            _timeseries(axes, panel, results, start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _rect(pos: Mapping[str, int], height: float, *, row: bool) -> tuple[float, float, float, float]:
    """The panel's grid cell in figure fractions, inset for its title and tick labels."""
    column = _WIDTH_INCHES / _COLUMNS
    left = pos["x"] * column + (0.05 if row else 0.45)
    width = pos["w"] * column - (0.1 if row else 0.6)
    top = _HEADER_INCHES + pos["y"] * _INCHES_PER_ROW + (0.0 if row else 0.3)
    box = pos["h"] * _INCHES_PER_ROW - (0.0 if row else 0.75)
    return (left / _WIDTH_INCHES, 1 - (top + box) / height, width / _WIDTH_INCHES, box / height)


def _row(axes: Any, title: str) -> None:
    axes.set_axis_off()
    axes.text(0.0, 0.5, title, fontsize=13, fontweight="bold", va="center")


def _frame(axes: Any, title: str) -> None:
    axes.set_title(title, fontsize=9, loc="left")
    axes.tick_params(labelsize=7)


def _thresholds(panel: Mapping[str, Any]) -> list[tuple[float, str]]:
    steps = (panel["fieldConfig"]["defaults"].get("thresholds") or {}).get("steps") or []
    return [(s["value"], s["color"]) for s in steps if s.get("value") is not None]


def _base_color(panel: Mapping[str, Any]) -> str:
    steps = (panel["fieldConfig"]["defaults"].get("thresholds") or {}).get("steps") or []
    return str(steps[0]["color"]) if steps else "green"


def _legend(target: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    text = target.get("legendFormat") or ""
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), text) or str(dict(labels)) or "value"


def _timeseries(
    axes: Any,
    panel: Mapping[str, Any],
    results: list[tuple[Mapping[str, Any], list[Series]]],
    start: float,
    end: float,
) -> None:
    _frame(axes, panel["title"])
    drawn = 0
    for target, series_list in results:
        for series in series_list:
            finite = [(t - end, v) for t, v in zip(series.times, series.values, strict=True)]
            finite = [(t, v) for t, v in finite if math.isfinite(v)]
            if finite:
                axes.plot(
                    *zip(*finite, strict=True), linewidth=1.2, label=_legend(target, series.labels)
                )
                drawn += 1
    for value, color in _thresholds(panel):
        axes.axhline(value, linestyle="--", linewidth=0.8, color=_COLORS.get(color, color))
    axes.set_xlim(start - end, 0)
    unit = panel["fieldConfig"]["defaults"].get("unit") or ""
    axes.set_xlabel(f"seconds before the end  ({unit})", fontsize=7, labelpad=1)
    if drawn:
        axes.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)
    else:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", color="grey")


def _stat(
    axes: Any, panel: Mapping[str, Any], results: list[tuple[Mapping[str, Any], list[Series]]]
) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    _frame(axes, panel["title"])
    # Grafana's "last not null": a series that stopped (traffic ended) keeps its last value.
    values = [
        (finite[-1], _legend(t, s.labels))
        for t, found in results
        for s in found
        if (finite := [v for v in s.values if math.isfinite(v)])
    ]
    unit = panel["fieldConfig"]["defaults"].get("unit") or ""
    if not values:
        axes.text(0.5, 0.45, "no data", transform=axes.transAxes, ha="center", color="grey")
        return
    text = "\n".join(
        _format(v, unit) + (f"  {name}" if len(values) > 1 else "") for v, name in values
    )
    color = _base_color(panel)
    for threshold, step_color in _thresholds(panel):
        if values[0][0] >= threshold:
            color = step_color
    size = 20 if len(values) == 1 else 8
    axes.text(
        0.5, 0.45, text, transform=axes.transAxes, ha="center", va="center",
        fontsize=size, fontweight="bold", color=_COLORS.get(color, color),
    )  # fmt: skip


def _format(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.1f} %"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit in ("reqps", "ops"):
        return f"{value:.2f}/s"
    return f"{value:.3g}"


def render_all(
    fetch: Fetch, *, end: float, range_seconds: float, scrape_interval: float, out: Path
) -> list[Path]:
    """Render both dashboards (each with its own job) into ``out``; returns the files."""
    written = []
    for board in queries.load_dashboards():
        job = queries.DASHBOARD_JOBS[board["uid"]]
        ctx = queries.GrafanaContext(
            scrape_interval=scrape_interval,
            range_seconds=range_seconds,
            max_data_points=300,
            variables={"job": job},
        )
        path = out / f"{board['uid']}.png"
        render_dashboard(board, fetch, ctx, end=end, path=path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.render", description=__doc__)
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboards"))
    args = parser.parse_args(argv)
    for path in render_all(
        prometheus_fetch(args.prometheus),
        end=time.time(),
        range_seconds=args.minutes * 60,
        scrape_interval=args.scrape_interval,
        out=args.out,
    ):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
