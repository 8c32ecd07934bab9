"""``mock-meta verify`` and ``trigger --to`` against a loopback receiver; help and banner."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mock_meta.banner import startup_banner
from mock_meta.cli import DIRECT_MODE_NOTE, _parser, trigger, verify
from mock_meta.settings import MockSettings
from mock_meta.testing import LoopbackServer

SECRET = "cli_secret"
TOKEN = "cli_verify_token"


@dataclass
class Receiver:
    bodies: list[bytes] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhook", self.webhook, methods=["GET", "POST"])])

    async def webhook(self, request: Request) -> PlainTextResponse:
        if request.method == "GET":
            if request.query_params.get("hub.verify_token") != TOKEN:
                return PlainTextResponse("forbidden", status_code=403)
            return PlainTextResponse(request.query_params["hub.challenge"])
        raw = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if request.headers.get("x-hub-signature-256") != expected:
            return PlainTextResponse("bad signature", status_code=403)
        self.bodies.append(raw)
        return PlainTextResponse("EVENT_RECEIVED")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with LoopbackServer(rec.app()) as server:
        yield rec, f"{server.base_url}/webhook"


async def test_verify_exits_0_when_the_challenge_is_echoed(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    out = io.StringIO()
    assert await verify(url, TOKEN, out=out) == 0
    assert out.getvalue().startswith("OK:")


async def test_verify_exits_1_and_explains_a_token_mismatch(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    out = io.StringIO()
    assert await verify(url, "wrong-token", out=out) == 1
    text = out.getvalue()
    assert "403" in text and "verify token" in text and "(#2200)" in text


async def test_verify_explains_a_refused_connection() -> None:
    out = io.StringIO()
    # Port 9 (discard) on loopback is closed on test machines; nothing listens there.
    assert await verify("http://127.0.0.1:9/webhook", TOKEN, out=out, timeout=2) == 1
    assert "FAILED" in out.getvalue()


async def test_trigger_sends_one_signed_event_and_prints_the_answer(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    args = _parser().parse_args(
        ["trigger", "text", "--to", url, "--app-secret", SECRET, "--text", "héllo / wörld"]
    )
    out = io.StringIO()
    assert await trigger(args, out=out) == 0
    body = rec.bodies[0]
    assert body.isascii() and b"\\/" in body  # Meta's wire format
    event = json.loads(body)["entry"][0]["messaging"][0]
    assert event["message"]["text"] == "héllo / wörld"
    printed = out.getvalue()
    assert "HTTP 200" in printed and SECRET not in printed


@pytest.mark.parametrize(
    "event_type", ["postback", "reaction", "read", "echo", "delivery", "handover"]
)
async def test_trigger_builds_other_event_types(
    receiver: tuple[Receiver, str], event_type: str
) -> None:
    rec, url = receiver
    args = _parser().parse_args(["trigger", event_type, "--to", url, "--app-secret", SECRET])
    assert await trigger(args, out=io.StringIO()) == 0
    assert len(rec.bodies) == 1


async def test_trigger_with_a_wrong_signature_reports_the_bots_refusal(
    receiver: tuple[Receiver, str],
) -> None:
    _, url = receiver
    args = _parser().parse_args(
        ["trigger", "text", "--to", url, "--app-secret", SECRET, "--signature", "wrong"]
    )
    out = io.StringIO()
    assert await trigger(args, out=out) == 1
    assert "HTTP 403" in out.getvalue()


def test_unknown_event_types_are_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["trigger", "teleport", "--app-secret", SECRET])


def test_direct_trigger_says_plainly_what_it_bypasses() -> None:
    args = _parser().parse_args(
        ["trigger", "text", "--to", "http://127.0.0.1:9/webhook", "--app-secret", SECRET]
    )
    out = io.StringIO()
    asyncio.run(trigger(args, out=out))
    assert out.getvalue().startswith(DIRECT_MODE_NOTE)


@pytest.mark.parametrize("command", [[], ["serve"], ["verify"], ["trigger"], ["check"]])
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args([*command, "--help"])
    shown = capsys.readouterr().out
    assert "usage: mock-meta" in shown and "`" not in shown


def test_the_banner_shows_urls_and_only_the_public_test_credentials() -> None:
    default = startup_banner(MockSettings(), "http://127.0.0.1:8081")
    assert "GRAPH_API_BASE=http://127.0.0.1:8081" in default
    assert "http://127.0.0.1:8081/_mock/" in default and "/docs" in default
    assert "app secret test_app_secret" in default and "verify token test_verify_token" in default
    custom = startup_banner(
        MockSettings(app_secret="s3cr3t-value", page_token="EAAB-real"), "http://h:1"
    )
    assert "s3cr3t-value" not in custom and "EAAB-real" not in custom
    assert "app secret from MOCK_META_APP_SECRET (not shown)" in custom


async def test_a_direct_trigger_without_the_app_secret_is_a_usage_error() -> None:
    args = _parser().parse_args(["trigger", "text", "--to", "http://127.0.0.1:9/webhook"])
    out = io.StringIO()
    assert await trigger(args, out=out) == 2
    assert "--app-secret" in out.getvalue()


async def test_receipts_cannot_go_through_the_mock() -> None:
    args = _parser().parse_args(["trigger", "echo"])
    out = io.StringIO()
    assert await trigger(args, out=out) == 2
    assert "use --to" in out.getvalue()
