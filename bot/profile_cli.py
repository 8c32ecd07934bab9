"""``messenger-bot profile apply FILE [--dry-run]`` and ``messenger-bot profile show``.

Both need ``MESSENGER_PAGE_ACCESS_TOKEN`` (and ``GRAPH_API_BASE`` to talk to the mock).
Exit codes: 0 done, 1 Graph refused or the file is invalid, 2 a setting is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

import httpx
import yaml

from bot.limits import LimitError
from bot.page_api import PageApi, PageApiError
from bot.profile import ProfileError, apply_profile, describe, load_profile, read_profile
from bot.settings import BotSettings

EXIT_OK, EXIT_FAILURE = 0, 1


def add_profile_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    profile = commands.add_parser("profile", help="set or show the page's Messenger Profile")
    actions = profile.add_subparsers(dest="action", required=True)
    apply = actions.add_parser("apply", help="make the page match FILE; prints the diff")
    apply.add_argument("file", type=Path, help="profile YAML (get_started, greeting, ...)")
    apply.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    actions.add_parser("show", help="print the page's current profile as YAML")


def run_profile_command(
    args: argparse.Namespace,
    settings: BotSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    out: TextIO | None = None,
) -> int:
    """Run ``profile apply|show``; ``transport`` lets tests point it at an in-process mock."""
    return asyncio.run(profile_command(args, settings, transport=transport, out=out))


async def profile_command(
    args: argparse.Namespace,
    settings: BotSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    out: TextIO | None = None,
) -> int:
    """``run_profile_command`` inside a running event loop."""
    out = out if out is not None else sys.stdout  # looked up late: pytest's capsys swaps it
    try:
        async with PageApi(settings, transport=transport) as api:
            if args.action == "show":
                current = await read_profile(api)
                out.write(yaml.safe_dump(current, sort_keys=False, allow_unicode=True) or "{}\n")
                return EXIT_OK
            changes = await apply_profile(api, load_profile(args.file), dry_run=args.dry_run)
            out.write(describe(changes))
            if args.dry_run and not changes.empty:
                out.write("dry run: nothing was changed\n")
            return EXIT_OK
    except (ProfileError, LimitError, PageApiError) as exc:
        print(f"messenger-bot profile: {exc}", file=sys.stderr)
        return EXIT_FAILURE
