"""mock-meta: serve the fake Messenger Platform, verify a callback, trigger one event, or
grade any bot against the platform's rules.

    mock-meta serve [--port 8081] [--seed-file seed.yaml] [--callback-url URL]
    mock-meta verify http://127.0.0.1:8000/webhook --verify-token test_verify_token
    mock-meta trigger text --text hi                 # through a running mock-meta serve
    mock-meta trigger text --to http://127.0.0.1:8000/webhook --app-secret test_app_secret
    mock-meta check http://127.0.0.1:8000/webhook    # the conformance report card

``verify``, ``trigger`` and ``check`` exit 0 on success and 1 otherwise, explaining what went
wrong (2: bad usage). Secrets given on the command line are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO, get_args

import httpx

from mock_meta.control_models import ActionType
from mock_meta.settings import (
    DEFAULT_APP_ID,
    DEFAULT_PAGE_ID,
    DEFAULT_PSID,
)

# Every user action the control API knows, plus the page-side receipts a bot may see.
TRIGGER_TYPES = (*get_args(ActionType), "echo", "delivery")


DEFAULT_MOCK_URL = "http://127.0.0.1:8081"
DIRECT_MODE_NOTE = (
    "Direct POST: this bypasses the mock, so the user's 24-hour window is not opened and a "
    "reply through a mock-meta Send API is refused (#10). Leave out --to to go through a "
    "running mock-meta serve instead."
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "verify":
        return asyncio.run(verify(args.callback_url, args.verify_token, timeout=args.timeout))
    if args.command == "check":
        from mock_meta.check.cli import run_check_command

        return asyncio.run(run_check_command(args))
    return asyncio.run(trigger(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-meta",
        description="The fake Messenger Platform: serve it, verify a callback, trigger one "
        "event, or grade any bot against the platform's rules.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the mock platform (env: MOCK_META_*)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8081)")
    serve.add_argument("--seed-file", help="JSON/YAML file with apps, pages and users")
    serve.add_argument("--callback-url", help="the bot's webhook URL for the seeded app")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument(
        "--fd", type=int, help="serve on this already-listening socket (supervisors, tests)"
    )

    verify_p = sub.add_parser("verify", help="run Meta's verification GET against a callback")
    verify_p.add_argument("callback_url")
    verify_p.add_argument("--verify-token", required=True)
    verify_p.add_argument("--timeout", type=float, default=5.0)

    trig = sub.add_parser(
        "trigger",
        help="one user event: through a running mock (default) or POSTed straight to a bot",
        description="Without --to, the event goes through a running mock-meta serve (the "
        "user's window opens as on Messenger) and the bot's reply is shown. With --to, a "
        "signed POST goes straight to the bot, bypassing the mock.",
    )
    trig.add_argument("event_type", choices=TRIGGER_TYPES)
    trig.add_argument(
        "--mock", help=f"the running mock's URL (default {DEFAULT_MOCK_URL}, or MOCK_META_PORT's)"
    )
    trig.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the reply")
    trig.add_argument("--to", help="POST straight to this webhook URL (bypasses the mock)")
    trig.add_argument("--app-secret", help="signs a direct POST (never printed)")
    trig.add_argument("--app-id", default=DEFAULT_APP_ID)
    trig.add_argument("--psid", default=DEFAULT_PSID)
    trig.add_argument("--page-id", default=DEFAULT_PAGE_ID)
    trig.add_argument("--text", help="message text (text, quick_reply title, edits, echoes)")
    trig.add_argument("--payload", help="postback / quick reply / optin payload")
    trig.add_argument("--target-mid", help="mid a reaction, edit or feedback refers to")
    trig.add_argument("--signature", choices=("valid", "wrong", "missing"), default="valid")
    trig.add_argument("--timeout", type=float, default=5.0)

    from mock_meta.check.cli import add_check_parser

    add_check_parser(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mock_meta.app import create_app
    from mock_meta.banner import startup_banner
    from mock_meta.settings import MockSettings

    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "seed_file": args.seed_file,
            "callback_url": args.callback_url,
        }.items()
        if value is not None
    }
    settings = MockSettings(**overrides)
    app = create_app(settings)
    banner = startup_banner(settings, _base_url(settings.host, _port(settings.port, args.fd)))
    print(banner, flush=True)  # before uvicorn takes over, even when piped to a log
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http=http,
        log_level=args.log_level,
        access_log=False,
        proxy_headers=False,  # loopback tool: no proxy in front, and ~2 % CPU saved
    )
    # Not uvicorn's fd=: it wraps the descriptor as AF_UNIX, so no connection gets
    # TCP_NODELAY and Nagle + delayed ACK add ~40 ms to every answer. socket(fileno=) reads
    # the real family and protocol.
    sockets = None if args.fd is None else [socket.socket(fileno=args.fd)]
    uvicorn.Server(config).run(sockets=sockets)
    return 0


def _port(configured: int, fd: int | None) -> int:
    if fd is None:
        return configured
    with socket.socket(fileno=os.dup(fd)) as sock:
        return int(sock.getsockname()[1])


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


async def verify(
    callback_url: str,
    verify_token: str,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - one GET's deadline
    out: TextIO | None = None,
) -> int:
    """Run the handshake; print the verdict and, on failure, what to fix. Returns 0 or 1."""
    from mock_meta.handshake import verify_callback

    out = out or sys.stdout
    result = await verify_callback(callback_url, verify_token, timeout=timeout)
    if result.ok:
        print(
            f"OK: {callback_url} echoed the challenge ({result.elapsed_seconds * 1000:.0f} ms)",
            file=out,
        )
        return 0
    print(f"FAILED: {result.reason}", file=out)
    print(f"Meta would answer: {result.graph_error_message()}", file=out)
    return 1


async def trigger(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """One user event, through the running mock (default) or POSTed straight to ``--to``."""
    out = out or sys.stdout
    if args.to is None:
        return await _trigger_through_mock(args, out)
    if args.app_secret is None:
        print("a direct POST (--to) needs --app-secret to sign the body", file=out)
        return 2
    return await _trigger_direct(args, out)


async def _trigger_through_mock(args: argparse.Namespace, out: TextIO) -> int:
    from mock_meta.client import MockMetaClient, MockMetaError, ReplyTimeout
    from mock_meta.settings import MockSettings

    if args.mock is None:  # the mock mock-meta serve would start with this environment
        settings = MockSettings()
        args.mock = _base_url(settings.host, settings.port)

    if args.event_type in ("echo", "delivery"):
        print(
            f"{args.event_type} events follow the bot's own sends; use --to to POST one", file=out
        )
        return 2
    try:
        fields = _action_fields(args, lambda: "m_" + "0" * 42)
    except ValueError as exc:
        print(f"cannot build {args.event_type}: {exc}", file=out)
        return 1
    try:
        async with MockMetaClient(args.mock) as mock:
            user = mock.user(args.psid, args.page_id)
            action = await user.act(fields.pop("type"), **fields)
            print(f"{args.event_type} from user {args.psid} sent through {args.mock}", file=out)
            delivery = await mock.wait_for_delivery(action.action_id, timeout=args.wait)
            verdict = _delivery_verdict(delivery)
            print(verdict, file=out)
            if delivery.get("state") != "delivered":
                return 1
            try:
                reply = await mock.wait_for_reply(args.psid, action.action_id, timeout=args.wait)
            except ReplyTimeout:
                print(f"no reply within {args.wait:g} s", file=out)
                return 0
            shown = reply.message.get("text", json.dumps(reply.message, ensure_ascii=False))
            print(f"bot replied: {shown!r} ({reply.time_to_reply_seconds or 0:.3f} s)", file=out)
            return 0
    except httpx.HTTPError as exc:
        print(
            f"FAILED: no mock at {args.mock} ({type(exc).__name__}); start one with "
            "'mock-meta serve' or pass --to for a direct POST",
            file=out,
        )
        return 1
    except MockMetaError as exc:
        print(f"FAILED: the mock refused the action: {exc}", file=out)
        return 1


def _delivery_verdict(delivery: dict[str, Any]) -> str:
    attempts = delivery.get("attempts") or []
    last = attempts[-1] if attempts else {}
    if delivery.get("state") == "delivered":
        return f"OK: the bot acknowledged with HTTP {last.get('status')}"
    reason = delivery.get("reason") or last.get("error") or f"HTTP {last.get('status')}"
    return f"FAILED: delivery {delivery.get('state')}: {reason}"


async def _trigger_direct(args: argparse.Namespace, out: TextIO) -> int:
    """Build one event, sign it like Meta and POST it; print the body and the bot's answer."""
    from mock_meta.builders import envelope
    from mock_meta.clock import ControllableClock
    from mock_meta.wire import serialize, webhook_headers

    print(DIRECT_MODE_NOTE, file=out)
    try:
        built = _build(args, ControllableClock())
    except ValueError as exc:
        print(f"cannot build {args.event_type}: {exc}", file=out)
        return 1
    body = serialize(envelope([built.entry(time_ms=built.timestamp_ms or 0)]))
    headers = webhook_headers(body, args.app_secret, signature_mode=args.signature)
    print(f"POST {args.to}  ({args.event_type}, signature {args.signature})", file=out)
    print(json.dumps(json.loads(body), indent=2, ensure_ascii=False), file=out)
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=args.timeout) as client:
            response = await client.post(args.to, content=body, headers=headers)
    except httpx.TimeoutException:
        print(f"FAILED: no answer within {args.timeout:g} s (Meta would retry)", file=out)
        return 1
    except httpx.HTTPError as exc:
        print(f"FAILED: could not reach {args.to}: {type(exc).__name__} {exc}", file=out)
        return 1
    answer = response.text[:500]
    verdict = "OK" if response.status_code == 200 else "FAILED (Meta counts only 200 as delivered)"
    print(f"{verdict}: HTTP {response.status_code} {answer!r}", file=out)
    return 0 if response.status_code == 200 else 1


def _build(args: argparse.Namespace, clock: Any) -> Any:
    from pydantic import ValidationError

    from mock_meta.actions import build_action
    from mock_meta.builders import EventBuilder
    from mock_meta.control_models import parse_action

    builder = EventBuilder(clock, random.Random())
    page, psid = args.page_id, args.psid
    if args.event_type == "echo":
        return builder.echo(page, psid, app_id=args.app_id, text=args.text or "echo")
    if args.event_type == "delivery":
        return builder.delivery(
            page, psid, [args.target_mid] if args.target_mid else None, builder.now_ms()
        )
    try:
        request = parse_action(_action_fields(args, builder.new_mid))
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    return build_action(builder, page, psid, request, app_id=args.app_id)


def _action_fields(args: argparse.Namespace, new_mid: Callable[[], str]) -> dict[str, Any]:
    """The control-API action for the command line, with defaults that make it valid."""
    fields: dict[str, Any] = {"type": args.event_type}
    if args.event_type in ("text", "standby_text") and args.text is None:
        fields["text"] = "hello from mock-meta"
    for key in ("text", "payload", "target_mid"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    if args.event_type in ("quick_reply", "postback") and "payload" not in fields:
        fields["payload"] = "MOCK_META_PAYLOAD"
    if args.event_type == "reaction" and "target_mid" not in fields and args.to is not None:
        fields["target_mid"] = new_mid()  # through the mock: the bot's last message
    if args.event_type == "message_edit":
        fields.setdefault("target_mid", new_mid())
        fields.setdefault("text", "edited text")
    return fields


if __name__ == "__main__":
    raise SystemExit(main())
