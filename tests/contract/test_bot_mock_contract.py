"""The bot against the mock platform over real HTTP: handshake, routing, replies, receipts,
and the trace that follows one message from the webhook to the Send API call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from bot.events import EventKind
from bot.outbox_codec import key_from_metadata
from tests.contract.bot_mock_pair import (
    APP_ID,
    APP_SECRET,
    PSID,
    VERIFY_TOKEN,
    BotMockPair,
    eventually,
)

REPLY_KINDS = {EventKind.TEXT, EventKind.QUICK_REPLY, EventKind.ATTACHMENTS, EventKind.POSTBACK}
EVERY_KIND = set(EventKind) - {EventKind.UNKNOWN}


async def test_handshake_via_the_mock_succeeds_and_a_wrong_verify_token_fails_with_2200(
    pair: BotMockPair,
) -> None:
    checked = await pair.mock.handshake()
    assert (checked["ok"], checked["status"]) == (True, 200)
    refused = await pair.mock.handshake(verify_token="not-the-token")
    assert (refused["ok"], refused["status"], refused["failure"]) == (False, 403, "wrong_status")

    subscribe = {
        "object": "page",
        "callback_url": f"{pair.bot_url}/webhook",
        "fields": "messages,messaging_postbacks",
        "access_token": f"{APP_ID}|{APP_SECRET}",
    }
    async with httpx.AsyncClient(base_url=pair.mock_url) as graph:
        ok = await graph.post(
            f"/v25.0/{APP_ID}/subscriptions", data={**subscribe, "verify_token": VERIFY_TOKEN}
        )
        wrong = await graph.post(
            f"/v25.0/{APP_ID}/subscriptions", data={**subscribe, "verify_token": "guess"}
        )

    assert (ok.status_code, ok.json()) == (200, {"success": True})
    assert wrong.status_code >= 400
    assert wrong.json()["error"]["code"] == 2200
    assert "HTTP Status Code = 403" in wrong.json()["error"]["message"]
    assert pair.metric("bot_webhook_verifications_total", result="success") == 2
    assert pair.metric("bot_webhook_verifications_total", result="token_mismatch") == 2


async def test_every_event_type_the_mock_sends_is_stored_and_routed_to_its_kind(
    pair: BotMockPair,
) -> None:
    user = pair.mock.user(PSID)
    first = await user.send_text("hi")
    await pair.mock.wait_for_reply(PSID, first.action_id, timeout=10)  # a target for reactions
    await user.tap_quick_reply("Red", "PICK_RED")
    await user.act("attachment", attachment_type="image")
    await user.tap_postback("GET_STARTED")
    await user.react(first.mid or "")
    await user.read()
    for kind in ("referral", "optin", "handover", "policy_enforcement", "account_linking"):
        await user.act(kind)
    await user.act("game_play", score=7)
    await user.act("feedback", score=4)
    await user.act("message_edit", target_mid=first.mid, text="hi, edited")
    await user.act("standby_text", text="for the inbox")

    def counts(name: str, kind: EventKind, **labels: str) -> float:
        return pair.metric(name, event_type=kind.value, **labels)

    def all_received_and_finished() -> bool:
        for kind in EVERY_KIND:
            received = counts("bot_webhook_events_received_total", kind)
            finished = sum(
                counts("bot_events_processed_total", kind, outcome=o)
                for o in ("handled", "unhandled", "dead_lettered")
            )
            if received == 0 or finished < received:
                return False
        return True

    # Echoes and delivery receipts come from the mock after each of the bot's replies.
    await eventually(all_received_and_finished, within=15, what="every kind received and done")
    for kind in EVERY_KIND:
        handled = counts("bot_events_processed_total", kind, outcome="handled")
        unhandled = counts("bot_events_processed_total", kind, outcome="unhandled")
        assert (handled > 0, unhandled > 0) == (kind in REPLY_KINDS, kind not in REPLY_KINDS), kind
        assert counts("bot_events_processed_total", kind, outcome="failed") == 0, kind
        assert counts("bot_events_processed_total", kind, outcome="dead_lettered") == 0, kind
    assert pair.metric("bot_webhook_requests_rejected_total", reason="bad_signature") == 0


async def test_replies_of_the_reference_bot_reach_the_user_through_the_send_api(
    pair: BotMockPair,
) -> None:
    user = pair.mock.user(PSID)
    cases = [
        (user.send_text("hello there"), "You said: hello there"),
        (user.tap_quick_reply("Blue", "PICK_BLUE"), "You said: Blue"),
        (user.act("attachment", attachment_type="file"), "I received your attachment."),
        (user.tap_postback("GET_STARTED"), "Welcome. Tell me what you need."),
        (user.tap_postback("MENU_HELP", title="Help"), "Postback received: MENU_HELP"),
    ]
    for act, expected in cases:
        action = await act
        reply = await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)
        assert reply.message == {"text": expected, "metadata": reply.message["metadata"]}
        assert key_from_metadata(reply.message["metadata"]) is not None  # the idempotency key

    sends = await pair.mock.journal("sends", psid=PSID)
    assert [s["request"]["message"]["text"] for s in sends] == [e for _, e in cases]
    assert all(s["request"]["messaging_type"] == "RESPONSE" for s in sends)
    assert all(s["request"]["access_token"] == "[redacted]" for s in sends)  # never stored


async def test_echo_and_delivery_receipts_of_a_reply_reach_the_bot_and_get_no_reply(
    pair: BotMockPair,
) -> None:
    action = await pair.mock.user(PSID).send_text("ping")
    reply = await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)

    await pair.wait_metric("bot_events_processed_total", 1, event_type="echo", outcome="unhandled")
    await pair.wait_metric(
        "bot_events_processed_total", 1, event_type="delivery", outcome="unhandled"
    )
    assert pair.metric("bot_echoes_ignored_total") == 1

    async def receipts() -> list[dict[str, Any]]:
        found = [
            d
            for d in await pair.mock.journal("deliveries")
            if d["event_type"] in ("echo", "delivery")
        ]
        # The bot may finish an event before the mock has read the 200 it answered.
        return found if len(found) == 2 and all(d["state"] == "delivered" for d in found) else []

    delivered = await eventually(receipts, what="both receipts delivered")
    assert sorted(d["event_type"] for d in delivered) == ["delivery", "echo"]
    assert {d["mid"] for d in delivered if d["event_type"] == "echo"} == {reply.message_id}
    summary = await pair.mock.summary()
    assert (summary["sends"], summary["answered"], summary["extra_replies"]) == (1, 1, 0)


async def test_a_message_is_traced_from_webhook_to_send_api_call_and_the_mock_gets_the_context(
    pair: BotMockPair,
) -> None:
    action = await pair.mock.user(PSID).send_text("trace me")
    await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)

    def one(kind: SpanKind, matches: Callable[[ReadableSpan], bool]) -> ReadableSpan | None:
        found = [s for s in pair.spans.get_finished_spans() if s.kind is kind and matches(s)]
        assert len(found) <= 1, found
        return found[0] if found else None

    def of_text(span: ReadableSpan) -> bool:
        return (span.attributes or {}).get("bot.mid") == action.mid

    consumer = await eventually(
        lambda: one(SpanKind.CONSUMER, of_text), what="the consumer span of the text"
    )
    assert len(consumer.links) == 1
    producer = one(SpanKind.PRODUCER, lambda s: _span_id(s) == consumer.links[0].context.span_id)
    assert producer is not None
    server = one(SpanKind.SERVER, lambda s: _span_id(s) == _parent_id(producer))
    client = one(SpanKind.CLIENT, lambda s: _parent_id(s) == _span_id(consumer))
    assert server is not None and client is not None

    assert server.name == "POST /webhook"
    assert _parent_id(consumer) == _span_id(producer)  # a child of its producer, and linked
    chain = (server, producer, consumer, client)
    assert {_trace_id(s) for s in chain} == {_trace_id(consumer)}
    client_attributes = client.attributes or {}
    # One semantic-convention version: the stable HTTP names only.
    assert client_attributes.get("http.response.status_code") == 200
    assert "http.status_code" not in client_attributes and "http.method" not in client_attributes

    sent = pair.graph.send_api_calls()
    assert len(sent) == 1
    _version, trace_id, parent_id, _flags = sent[0].headers["traceparent"].split("-")
    assert int(trace_id, 16) == _trace_id(consumer)
    assert int(parent_id, 16) == _span_id(client)


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None
