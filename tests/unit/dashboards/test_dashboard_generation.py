"""The committed dashboard JSON is exactly what ``python -m dashboards.build`` generates."""

from __future__ import annotations

import json
from pathlib import Path

from dashboards_testlib import DASHBOARDS

from dashboards import build


def test_committed_json_matches_the_code() -> None:
    for name, text in build.render_all().items():
        assert (DASHBOARDS / name).read_text("utf-8") == text, (
            f"dashboards/{name} is stale: run `python -m dashboards.build`"
        )


def test_rendering_is_deterministic_with_sorted_keys_and_trailing_newline() -> None:
    first, second = build.render_all(), build.render_all()
    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        assert (
            json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            == text
        )


def test_check_passes_on_fresh_output_and_fails_on_stale_or_missing(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0

    bot = tmp_path / "bot.json"
    bot.write_text(bot.read_text("utf-8").replace("Webhook POSTs", "Webhook posts"), "utf-8")
    assert build.main(["--check", "--out", str(tmp_path)]) == 1

    build.main(["--out", str(tmp_path)])
    (tmp_path / "platform.json").unlink()
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


def test_check_against_the_repository_passes() -> None:
    assert build.main(["--check"]) == 0


def test_dashboards_use_the_current_schema() -> None:
    # Grafana 11.6's dashboard schema (the newest flavour of grafana-foundation-sdk we pin).
    for text in build.render_all().values():
        assert json.loads(text)["schemaVersion"] >= 41
