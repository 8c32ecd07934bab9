"""``mock-meta check <callback-url>``: start a mock, grade the bot, write the report card.

The bot must use this mock as its Graph API (``GRAPH_API_BASE=http://127.0.0.1:8081``, or the
``--port`` given) and share the app secret, verify token and page token (the public test
defaults unless set with the options or ``MOCK_META_*`` variables).
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any, TextIO

from mock_meta.check.conversation import ConversationError, load_conversation
from mock_meta.check.report import CheckResult, format_junit, format_markdown, format_table
from mock_meta.check.runner import CheckOptions, run_checks

DEFAULT_JUNIT = Path("reports/mock-meta-check.xml")
DEFAULT_MARKDOWN = Path("reports/mock-meta-check.md")


def add_check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="grade any bot (any language) against the platform's rules; writes a report card",
        description="Starts a mock on 127.0.0.1 (--port), drives the bot at CALLBACK_URL "
        "through it and prints a report card (also JUnit XML and Markdown). Point the bot's "
        "Graph base URL at the mock first. Exit code 1 when a check fails.",
    )
    check.add_argument("callback_url", help="the bot's webhook URL")
    check.add_argument(
        "--port", type=int, help="the mock's port, the bot's Graph (default MOCK_META_PORT, 8081)"
    )
    check.add_argument(
        "--conversation", help="YAML/JSON file of turns and expected replies (default: echo bot)"
    )
    check.add_argument("--app-secret", help="default: MOCK_META_APP_SECRET or test_app_secret")
    check.add_argument(
        "--verify-token", help="default: MOCK_META_VERIFY_TOKEN or test_verify_token"
    )
    check.add_argument("--page-token", help="default: MOCK_META_PAGE_TOKEN or test_page_token")
    check.add_argument(
        "--only", metavar="IDS", help="comma-separated check ids (as in the report) to run"
    )
    check.add_argument("--reply-timeout", type=float, default=10.0, help="seconds per reply")
    check.add_argument("--junit", type=Path, default=DEFAULT_JUNIT, help="JUnit XML report")
    check.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN, help="Markdown report")


async def run_check_command(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from mock_meta.settings import MockSettings
    from mock_meta.testing import MockMetaServer

    out = out or sys.stdout
    try:
        conversation = load_conversation(args.conversation)
        only = None if args.only is None else [c.strip() for c in args.only.split(",") if c]
        options = CheckOptions(
            callback_url=args.callback_url,
            conversation=conversation,
            reply_timeout=args.reply_timeout,
            only=only,
        )
        options.selected()  # unknown check names are a usage error, before anything starts
    except (ConversationError, ValueError) as exc:
        print(f"mock-meta check: {exc}", file=out)
        return 2
    given = {
        "port": args.port,
        "app_secret": args.app_secret,
        "verify_token": args.verify_token,
        "page_token": args.page_token,
    }
    settings = MockSettings(
        callback_url=args.callback_url, **{k: v for k, v in given.items() if v is not None}
    )
    server = MockMetaServer(settings, port=settings.port)
    try:
        await server.start()
    except OSError as exc:
        busy = exc.errno == errno.EADDRINUSE
        why = "is in use (stop mock-meta serve first?)" if busy else f"failed: {exc.strerror}"
        print(f"mock-meta check: port {settings.port} {why}", file=out)
        return 2
    print(f"mock at {server.base_url}; checking {args.callback_url}", file=out)

    def progress(result: CheckResult) -> None:
        print(f"  {result.status.value:<7} {result.id}", file=out, flush=True)

    try:
        card = await run_checks(server, options, progress=progress)
    finally:
        await server.stop()
    print("", file=out)
    print(format_table(card), file=out)
    for path, text in ((args.junit, format_junit(card)), (args.markdown, format_markdown(card))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"\nreports: {args.junit}  {args.markdown}", file=out)
    return 0 if card.ok else 1
