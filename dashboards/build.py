"""Generate the committed dashboard JSON from code: ``python -m dashboards.build``.

``--check`` regenerates in memory and exits 1 when a committed file differs (CI), so the
JSON in the repository is always what the code says. Output is deterministic: sorted keys,
two-space indent, panel ids numbered in reading order, a trailing newline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import bot_dashboard, platform_dashboard
from dashboards.panels import RUNBOOK_BASE_DEFAULT

DASHBOARD_DIR = Path(__file__).resolve().parent
BUILDERS: dict[str, Callable[[str], Dashboard]] = {
    "bot.json": bot_dashboard.build,
    "platform.json": platform_dashboard.build,
}


def _all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels") or [])


def _finish(board: dict[str, Any]) -> dict[str, Any]:
    # The SDK leaves ids at 0/absent; Grafana wants them unique within a dashboard.
    for number, panel in enumerate(_all_panels(board["panels"]), start=1):
        panel["id"] = number
    # Grafana adds its built-in annotation to this list on load; it must be a list.
    board["annotations"] = {"list": []}
    return board


def render(builder: Callable[[str], Dashboard], runbook_base: str = RUNBOOK_BASE_DEFAULT) -> str:
    """One dashboard as the exact text committed to the repository."""
    model = json.loads(json.dumps(builder(runbook_base).build(), cls=JSONEncoder))
    return json.dumps(_finish(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all(runbook_base: str = RUNBOOK_BASE_DEFAULT) -> dict[str, str]:
    """File name → JSON text for every dashboard."""
    return {name: render(builder, runbook_base) for name, builder in BUILDERS.items()}


def stale_files(out_dir: Path, rendered: dict[str, str]) -> list[str]:
    """Names of files in ``out_dir`` that are missing or differ from ``rendered``."""
    stale = []
    for name, text in rendered.items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed JSON is stale")
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="output directory")
    args = parser.parse_args(argv)

    rendered = render_all()
    if args.check:
        stale = stale_files(args.out, rendered)
        for name in stale:
            print(f"{args.out / name} is stale; run `python -m dashboards.build`", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
