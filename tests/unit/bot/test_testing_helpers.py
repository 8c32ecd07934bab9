"""bot.testing is public API: its helpers do what their docstrings promise."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bot.app import create_app
from bot.events import parse_envelope
from bot.routing import Reply, Router
from bot.send_api import SendResult
from bot.signature import verify_signature
from bot.testing import (
    APP_SECRET,
    PAGE_ID,
    PSID,
    RecordingSendApi,
    SentCall,
    make_settings,
    postback_item,
    signed_envelope,
    text_item,
)


def test_signed_envelope_is_signed_like_meta_and_parses_back() -> None:
    body, headers = signed_envelope([text_item("a/b é"), postback_item("GO")])
    assert b"\\/" in body and b"\\u00e9" in body  # Meta's escaping, signed as sent
    assert verify_signature(body, headers["X-Hub-Signature-256"], [APP_SECRET.encode()]).ok
    events = parse_envelope(json.loads(body))
    assert [(e.kind.value, e.page_id, e.user_id) for e in events] == [
        ("text", PAGE_ID, PSID),
        ("postback", PAGE_ID, PSID),
    ]
    assert parse_envelope(json.loads(signed_envelope([text_item("x")], standby=True)[0]))[0].standby


def test_make_settings_takes_field_names_or_environment_names() -> None:
    settings = make_settings(worker_concurrency=3, SEND_API_MAX_ATTEMPTS=2)
    assert (settings.worker_concurrency, settings.send_max_attempts) == (3, 2)
    assert settings.app_secret.get_secret_value() == APP_SECRET


async def test_recording_send_api_records_and_fails_chosen_calls() -> None:
    async def refuse_bob(call: SentCall) -> SendResult | None:
        return SendResult(ok=False, error_code=551) if call.psid == "bob" else None

    api = RecordingSendApi(refuse_bob)
    assert (await api.send(PAGE_ID, "bob", {"text": "hi"})).error_code == 551
    assert (await api.send(PAGE_ID, "ann", {"text": "hi"}, persona_id="p")).ok
    assert [c.psid for c in api.calls] == ["bob", "ann"]
    assert api.texts == ["hi"] and api.sent[0].options == (("persona_id", "p"),)
    assert [c.psid for c in await api.wait_for(1, within=1)] == ["ann"]
    with pytest.raises(TimeoutError):
        await api.wait_for(2, within=0.05)


async def test_recording_send_api_counts_a_successful_answer_and_shows_metadata() -> None:
    async def stamped(call: SentCall) -> SendResult | None:
        return SendResult(ok=True, message_id=f"m_{call.text}")

    api = RecordingSendApi(stamped)
    assert (await api.send(PAGE_ID, PSID, {"text": "a", "metadata": "k1"})).message_id == "m_a"
    await api.send(PAGE_ID, PSID, {"text": "b"})
    assert api.texts == ["a", "b"] and api.metadata == ["k1", None]


async def test_the_helpers_drive_a_whole_bot_through_its_webhook(tmp_path: Path) -> None:
    router = Router()
    router.on_text(lambda ctx: Reply.text(f"You said: {ctx.text}"))
    closed: list[bool] = []

    async def close_client() -> None:
        closed.append(True)

    router.on_shutdown(close_client)
    api = RecordingSendApi()
    app = create_app(
        make_settings(inbox_path=tmp_path / "inbox.db"),
        router=router,
        send_api=api,
        registry=CollectorRegistry(),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            body, headers = signed_envelope([text_item("hello")])
            answer = await client.post("/webhook", content=body, headers=headers)
            assert answer.status_code == 200
            [call] = await api.wait_for(1)
    assert (call.psid, call.text) == (PSID, "You said: hello")
    assert closed == [True]  # the app closed the handlers' clients at shutdown
