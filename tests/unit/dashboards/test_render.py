"""Dashboard pictures without Grafana: every panel's substituted queries are fetched and drawn."""

from __future__ import annotations

from pathlib import Path

from dashboards import queries, render


def test_every_panel_query_is_fetched_substituted_and_the_picture_is_written(
    tmp_path: Path,
) -> None:
    asked: list[tuple[str, float, float, float]] = []

    def fetch(promql: str, start: float, end: float, step: float) -> list[render.Series]:
        asked.append((promql, start, end, step))
        times = [start + i * step for i in range(int((end - start) / step) + 1)]
        return [render.Series({"instance": "bot:8000"}, times, [float(i % 7) for i in times])]

    written = render.render_all(
        fetch, end=10_000.0, range_seconds=60, scrape_interval=5.0, out=tmp_path
    )

    assert [p.name for p in written] == ["messenger-bot.png", "messenger-platform.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 50_000 for p in written)
    expected = len(queries.dashboard_queries(queries.load_dashboards()))
    assert len(asked) == expected
    assert not [q for q, *_ in asked if "$" in q], (
        "a Grafana variable or macro was left unsubstituted"
    )
    assert {(start, end) for _, start, end, _ in asked} == {(9_940.0, 10_000.0)}


def test_values_are_formatted_in_the_panel_unit() -> None:
    assert render._format(0.0421, "s") == "42 ms"
    assert render._format(2.5, "s") == "2.50 s"
    assert render._format(0.995, "percentunit") == "99.5 %"
    assert render._format(float("nan"), "s") == "NaN"
