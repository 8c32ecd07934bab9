"""``messenger-bot``: run the service, or inspect and replay dead letters.

    messenger-bot [serve] [--fd N]
    messenger-bot dead-letters list [--json] [--limit N] [--inbox PATH]
    messenger-bot dead-letters replay (--all | --id N ... | --reply-id N ...) [--inbox PATH]
    messenger-bot profile apply FILE [--dry-run] | profile show

Dead letters come in two kinds: ``handler_failed`` (the event's handler kept failing; replay
runs it again, by event ``--id``) and ``reply_undeliverable`` (the Send API refused a reply or
stayed down past its deadline; replay sends that reply again, by ``--reply-id``).

``serve`` runs one uvicorn process (uvloop, httptools with the limits of ``bot.http_guard``)
on ``HOST``/``PORT``, or on an already-bound listening socket passed as file descriptor
``--fd`` (supervisors and tests use this to avoid port races). A missing or invalid setting
stops start-up with exit code 2 and one line naming the variable, never its value.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.inbox import Inbox
from bot.settings import BotSettings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_STARTUP = 0, 1, 2, 3
# Placeholders so tools that only need INBOX_PATH work without the service's secrets.
_NO_SECRETS = {
    "MESSENGER_VERIFY_TOKEN": "unused",
    "MESSENGER_APP_SECRET": "unused",
    "MESSENGER_PAGE_ACCESS_TOKEN": "unused",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "serve"):
        return serve(fd=getattr(args, "fd", None))
    if args.command == "profile":
        from bot.profile_cli import run_profile_command

        # The page token is required; the app secret only matters with MESSENGER_APPSECRET_PROOF.
        unused = {k: v for k, v in _NO_SECRETS.items() if "PAGE" not in k and k not in os.environ}
        profile_settings = _settings(**unused)
        return (
            EXIT_USAGE if profile_settings is None else run_profile_command(args, profile_settings)
        )
    inbox_path = args.inbox
    inbox: Inbox | None = None
    if inbox_path is None:
        settings = _settings(**_NO_SECRETS)
        if settings is None:
            return EXIT_USAGE
        inbox_path = settings.inbox_path
        if settings.inbox_backend == "redis":  # every shard: operators see the whole cluster
            from bot.inbox_redis import RedisInbox

            inbox = RedisInbox.from_settings(settings)
    if inbox is None:
        if not Path(inbox_path).exists():
            print(f"messenger-bot: no inbox at {inbox_path}", file=sys.stderr)
            return EXIT_FAILURE
        from bot.inbox_sqlite import SqliteInbox

        inbox = SqliteInbox(Path(inbox_path))
    if args.action == "list":
        return asyncio.run(_list_dead_letters(inbox, args.limit, as_json=args.json))
    if args.all:
        return asyncio.run(_replay(inbox, None, None))
    return asyncio.run(_replay(inbox, args.ids or [], args.reply_ids or []))


def serve(*, fd: int | None = None) -> int:
    """Run the bot until SIGINT/SIGTERM; returns the process exit code."""
    settings = _settings()
    if settings is None:
        return EXIT_USAGE
    import uvicorn

    from bot.app import create_app, secret_values
    from bot.http_guard import EdgeLimits, guarded_protocol
    from bot.jsonlog import configure_logging

    # A fatal signal (SIGBUS when the inbox's shared memory loses its disk) prints its reason
    # and the Python stack to stderr instead of dying silently.
    faulthandler.enable()
    configure_logging(settings.log_level, secret_values(settings))
    app = create_app(settings, freeze_gc=True)
    closes = app.state.metrics.edge_closes
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=guarded_protocol(
            EdgeLimits.from_settings(settings),
            lambda reason: closes.labels(reason).inc(),
            app.state.admission,
            direct=True,
        ),
        timeout_keep_alive=settings.http_keep_alive_seconds,
        lifespan="on",
        log_config=None,  # keep our JSON handler (configured above)
        access_log=False,  # the HTTP metrics and traces cover requests; a log line each is waste
        # Nothing reads the client's address, so rewriting it from X-Forwarded-For (uvicorn's
        # default, for a proxy in front) would be a middleware every request pays for nothing.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )
    server = uvicorn.Server(config)
    sockets = [socket.socket(fileno=fd)] if fd is not None else None
    server.run(sockets=sockets)
    return EXIT_OK if server.started else EXIT_STARTUP


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming the offending variables, without echoing any value."""
    missing = [_name(e) for e in exc.errors() if e["type"] == "missing"]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        return f"missing required setting{plural} {', '.join(missing)}"
    first = exc.errors()[0]
    return f"invalid setting {_name(first)}: {first['msg']}"


def _settings(**overrides: Any) -> BotSettings | None:
    try:
        return BotSettings(**overrides)
    except ValidationError as exc:
        print(f"messenger-bot: {describe_settings_error(exc)}", file=sys.stderr)
        return None


def _name(error: Any) -> str:
    loc = error.get("loc") or ("?",)
    return str(loc[0])


async def _list_dead_letters(inbox: Inbox, limit: int, *, as_json: bool) -> int:
    await inbox.open()
    try:
        dead = await inbox.dead_letters(limit)
    finally:
        await inbox.close()
    if as_json:
        rows = [
            {
                "kind": d.kind.value,
                "id": d.id,
                "event_id": d.event.id,
                "reply_n": d.reply.n if d.reply else None,
                "event_type": d.event.kind,
                "page_id": d.event.page_id,
                "sender": d.event.sender_key,
                "timestamp_ms": d.event.timestamp_ms,
                "received_at": d.event.received_at,
                "attempts": d.reply.attempts if d.reply else d.event.attempts,
                "error": d.error,
                "dedup_key": d.event.dedup_key,
                "payload": json.loads(d.event.payload),
                "reply": json.loads(d.reply.body) if d.reply else None,
            }
            for d in dead
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not dead:
        print("no dead letters")
        return EXIT_OK
    print(
        f"{'id':>8}  {'kind':<20} {'event':>8}  {'event type':<18} {'received (UTC)':<20}"
        f" {'attempts':>8}  error"
    )
    for d in dead:
        received = datetime.fromtimestamp(d.event.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        attempts = d.reply.attempts if d.reply else d.event.attempts
        print(
            f"{d.id:>8}  {d.kind.value:<20} {d.event.id:>8}  {d.event.kind:<18} {received:<20}"
            f" {attempts:>8}  {d.error or ''}"
        )
    return EXIT_OK


async def _replay(inbox: Inbox, ids: list[int] | None, reply_ids: list[int] | None) -> int:
    await inbox.open()
    try:
        count = await inbox.replay(ids, reply_ids)
    finally:
        await inbox.close()
    print(f"replayed {count} dead letter{'s' if count != 1 else ''}")
    if ids is not None and reply_ids is not None and count < len(set(ids)) + len(set(reply_ids)):
        print("messenger-bot: some ids were not dead letters", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="messenger-bot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the webhook service (default)")
    serve_cmd.add_argument("--fd", type=int, help="serve on this already-listening socket")
    dead = commands.add_parser("dead-letters", help="inspect or replay dead letters (both kinds)")
    actions = dead.add_subparsers(dest="action", required=True)
    for name in ("list", "replay"):
        action = actions.add_parser(name)
        action.add_argument(
            "--inbox",
            type=Path,
            help="SQLite inbox file (default: INBOX_PATH, or Redis with INBOX_BACKEND=redis)",
        )
        if name == "list":
            action.add_argument("--json", action="store_true", help="machine-readable output")
            action.add_argument("--limit", type=int, default=100)
        else:
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("--all", action="store_true", help="replay every dead letter")
            which.add_argument(
                "--id", type=int, action="append", dest="ids", metavar="N", help="event id"
            )
            which.add_argument(
                "--reply-id",
                type=int,
                action="append",
                dest="reply_ids",
                metavar="N",
                help="reply id (of a reply_undeliverable dead letter)",
            )
    from bot.profile_cli import add_profile_parser

    add_profile_parser(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
