"""``mock-meta``: serve the fake platform, verify a callback, or trigger one event at any bot.

    mock-meta serve [--port 8081] [--seed-file seed.yaml] [--callback-url URL]
    mock-meta verify http://127.0.0.1:8000/webhook --verify-token test_verify_token
    mock-meta trigger text --to http://127.0.0.1:8000/webhook --app-secret test_app_secret --text hi

``verify`` and ``trigger`` exit 0 on success and 1 otherwise, explaining what went wrong.
Secrets given on the command line are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Sequence
from typing import Any, TextIO, get_args

import httpx

from mock_meta.control_models import ActionType
from mock_meta.settings import (
    DEFAULT_APP_ID,
    DEFAULT_CALLBACK_URL,
    DEFAULT_PAGE_ID,
    DEFAULT_PSID,
)

# Every user action the control API knows, plus the page-side receipts a bot may see.
TRIGGER_TYPES = (*get_args(ActionType), "echo", "delivery")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "verify":
        return asyncio.run(verify(args.callback_url, args.verify_token, timeout=args.timeout))
    return asyncio.run(trigger(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mock-meta", description=__doc__.split("\n\n")[0])
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

    trig = sub.add_parser("trigger", help="send one signed webhook event to a bot")
    trig.add_argument("event_type", choices=TRIGGER_TYPES)
    trig.add_argument("--to", default=DEFAULT_CALLBACK_URL, help="the bot's webhook URL")
    trig.add_argument("--app-secret", required=True, help="signs the body (never printed)")
    trig.add_argument("--app-id", default=DEFAULT_APP_ID)
    trig.add_argument("--psid", default=DEFAULT_PSID)
    trig.add_argument("--page-id", default=DEFAULT_PAGE_ID)
    trig.add_argument("--text", help="message text (text, quick_reply title, edits, echoes)")
    trig.add_argument("--payload", help="postback / quick reply / optin payload")
    trig.add_argument("--target-mid", help="mid a reaction, edit or feedback refers to")
    trig.add_argument("--signature", choices=("valid", "wrong", "missing"), default="valid")
    trig.add_argument("--timeout", type=float, default=5.0)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mock_meta.app import create_app
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
    if settings.console and args.fd is None:  # with --fd the caller knows the address
        print(f"mock_meta console: http://{settings.host}:{settings.port}/", flush=True)
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        fd=args.fd,
        loop=loop,
        http=http,
        log_level=args.log_level,
        access_log=False,
        proxy_headers=False,  # loopback tool: no proxy in front, and ~2 % CPU saved
    )
    return 0


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
    """Build one event, sign it like Meta and POST it; print the body and the bot's answer."""
    from mock_meta.builders import envelope
    from mock_meta.clock import ControllableClock
    from mock_meta.wire import serialize, webhook_headers

    out = out or sys.stdout
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
    fields: dict[str, Any] = {"type": args.event_type}
    if args.event_type in ("text", "standby_text") and args.text is None:
        fields["text"] = "hello from mock-meta"
    for key in ("text", "payload", "target_mid"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    if args.event_type in ("quick_reply", "postback") and "payload" not in fields:
        fields["payload"] = "MOCK_META_PAYLOAD"
    if args.event_type == "reaction" and "target_mid" not in fields:
        fields["target_mid"] = builder.new_mid()
    if args.event_type == "message_edit":
        fields.setdefault("target_mid", builder.new_mid())
        fields.setdefault("text", "edited text")
    try:
        request = parse_action(fields)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    return build_action(builder, page, psid, request, app_id=args.app_id)


if __name__ == "__main__":
    raise SystemExit(main())
