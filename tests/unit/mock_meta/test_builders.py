"""Every event type has Meta's documented keys, and our bot's parser classifies it right.

The parser check is the cheap contract test between the mock and ``bot/events.py``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from bot.events import EventKind, parse_envelope
from mock_meta.builders import (
    EVENT_FIELDS,
    BuiltEvent,
    EventBuilder,
    EventType,
    as_standby,
    envelope,
    subscription_field,
)
from mock_meta.clock import ControllableClock
from mock_meta.wire import serialize

PAGE, PSID, APP = "104501234567890", "6543210987654321", "1234567890123456"
START = 1_767_225_600.0


@pytest.fixture
def build() -> EventBuilder:
    return EventBuilder(ControllableClock(start=START, frozen=True), random.Random(5))


# (builder call, documented key → required sub-keys, the bot's kind)
CASES: dict[str, tuple[Callable[[EventBuilder], BuiltEvent], dict[str, set[str]], EventKind]] = {
    "text": (lambda b: b.text(PAGE, PSID, "hello"), {"message": {"mid", "text"}}, EventKind.TEXT),
    "reply_to": (
        lambda b: b.text(PAGE, PSID, "yes, that one", reply_to="m_earlier"),
        {"message": {"mid", "text", "reply_to"}},
        EventKind.TEXT,
    ),
    "quick_reply": (
        lambda b: b.quick_reply(PAGE, PSID, "Green", "PICK_GREEN"),
        {"message": {"mid", "text", "quick_reply"}},
        EventKind.QUICK_REPLY,
    ),
    "image": (
        lambda b: b.attachment(PAGE, PSID, "image", count=2),
        {"message": {"mid", "attachments"}},
        EventKind.ATTACHMENTS,
    ),
    "sticker": (
        lambda b: b.sticker(PAGE, PSID),
        {"message": {"mid", "attachments"}},
        EventKind.ATTACHMENTS,
    ),
    "fallback": (
        lambda b: b.fallback(PAGE, PSID, "https://youtu.be/x", title="Tahiti"),
        {"message": {"mid", "text", "attachments"}},
        EventKind.ATTACHMENTS,
    ),
    "location": (
        lambda b: b.location(PAGE, PSID, 37.48, -122.15),
        {"message": {"mid", "attachments"}},
        EventKind.ATTACHMENTS,
    ),
    "referral_message": (
        lambda b: b.referral_message(PAGE, PSID, "Is this still available?", ref="c42"),
        {"message": {"mid", "text", "referral"}},
        EventKind.TEXT,
    ),
    "echo": (
        lambda b: b.echo(PAGE, PSID, app_id=APP, text="shipped", metadata="order-7781"),
        {"message": {"is_echo", "app_id", "metadata", "mid", "text"}},
        EventKind.ECHO,
    ),
    "delivery": (
        lambda b: b.delivery(PAGE, PSID, ["m_a"], 1_767_225_599_000),
        {"delivery": {"mids", "watermark"}},
        EventKind.DELIVERY,
    ),
    "read": (
        lambda b: b.read(PAGE, PSID, 1_767_225_599_000),
        {"read": {"watermark"}},
        EventKind.READ,
    ),
    "react": (
        lambda b: b.reaction(PAGE, PSID, "m_a", "love"),
        {"reaction": {"reaction", "emoji", "action", "mid"}},
        EventKind.REACTION,
    ),
    "unreact": (
        lambda b: b.reaction(PAGE, PSID, "m_a", action="unreact"),
        {"reaction": {"action", "mid"}},
        EventKind.REACTION,
    ),
    "message_edit": (
        lambda b: b.message_edit(PAGE, PSID, "m_a", "edited"),
        {"message_edit": {"mid", "text", "num_edit"}},
        EventKind.MESSAGE_EDIT,
    ),
    "postback": (
        lambda b: b.postback(PAGE, PSID, "GET_STARTED"),
        {"postback": {"mid", "title", "payload"}},
        EventKind.POSTBACK,
    ),
    "postback_referral": (
        lambda b: b.postback(PAGE, PSID, "GET_STARTED", ref="summer_coupon"),
        {"postback": {"mid", "title", "payload", "referral"}},
        EventKind.POSTBACK,
    ),
    "referral": (
        lambda b: b.referral(PAGE, PSID, "summer_coupon"),
        {"referral": {"ref", "source", "type"}},
        EventKind.REFERRAL,
    ),
    "optin": (
        lambda b: b.optin(PAGE, PSID, payload="SIGNUP_WEEKLY"),
        {
            "optin": {
                "type",
                "payload",
                "notification_messages_token",
                "notification_messages_frequency",
                "token_expiry_timestamp",
                "user_token_status",
            }
        },
        EventKind.OPTIN,
    ),
    "pass_thread_control": (
        lambda b: b.pass_thread_control(
            PAGE, PSID, previous_owner_app_id=APP, new_owner_app_id="263902037430900"
        ),
        {"pass_thread_control": {"previous_owner_app_id", "new_owner_app_id"}},
        EventKind.HANDOVER,
    ),
    "take_thread_control": (
        lambda b: b.take_thread_control(
            PAGE, PSID, previous_owner_app_id=None, new_owner_app_id=APP, metadata="resume"
        ),
        {"take_thread_control": {"previous_owner_app_id", "new_owner_app_id", "metadata"}},
        EventKind.HANDOVER,
    ),
    "request_thread_control": (
        lambda b: b.request_thread_control(PAGE, PSID, requested_owner_app_id=APP, metadata="pls"),
        {"request_thread_control": {"requested_owner_app_id", "metadata"}},
        EventKind.HANDOVER,
    ),
    "app_roles": (
        lambda b: b.app_roles(PAGE, {APP: ["primary_receiver"]}),
        {"app_roles": {APP}},
        EventKind.HANDOVER,
    ),
    "policy_enforcement": (
        lambda b: b.policy_enforcement(PAGE, "block"),
        {"policy_enforcement": {"action", "reason"}},
        EventKind.POLICY_ENFORCEMENT,
    ),
    "account_linking": (
        lambda b: b.account_linking(PAGE, PSID),
        {"account_linking": {"status", "authorization_code"}},
        EventKind.ACCOUNT_LINKING,
    ),
    "game_play": (
        lambda b: b.game_play(PAGE, PSID, payload='{"level":3}'),
        {"game_play": {"game_id", "player_id", "locale", "context_type", "score", "payload"}},
        EventKind.GAME_PLAY,
    ),
    "response_feedback": (
        lambda b: b.response_feedback(PAGE, PSID, "m_a", good=False),
        {"response_feedback": {"feedback", "mid"}},
        EventKind.FEEDBACK,
    ),
    "messaging_feedback": (
        lambda b: b.messaging_feedback(PAGE, PSID, score=4, follow_up="Great!"),
        {"messaging_feedback": {"feedback_screens"}},
        EventKind.FEEDBACK,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_event_has_documented_keys(build: EventBuilder, name: str) -> None:
    factory, keys, _kind = CASES[name]
    built = factory(build)
    event = built.event
    assert event["timestamp"] == int(START * 1000)
    assert event["recipient"]["id"] == (PSID if built.event_type is EventType.ECHO else PAGE)
    for key, sub_keys in keys.items():
        assert sub_keys <= set(event[key]), f"{name}: {key} lacks {sub_keys - set(event[key])}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bot_parser_classifies_each_built_event(build: EventBuilder, name: str) -> None:
    factory, _keys, kind = CASES[name]
    built = factory(build)
    # Through the wire exactly as delivered: Meta's bytes, decoded by the bot's JSON reader.
    body = json.loads(serialize(envelope([built.entry(time_ms=int(START * 1000) + 5)])))
    [parsed] = parse_envelope(body)
    assert parsed.kind is kind
    assert parsed.page_id == PAGE


def test_every_event_type_has_a_builder_case_and_a_subscription_field() -> None:
    built_types = {
        factory(EventBuilder(ControllableClock(START, frozen=True))).event_type
        for factory, _, _ in CASES.values()
    }
    assert built_types == set(EventType)
    assert set(EVENT_FIELDS) == set(EventType)


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        (EventType.TEXT, "messages"),
        (EventType.ECHO, "message_echoes"),
        (EventType.DELIVERY, "message_deliveries"),
        (EventType.READ, "message_reads"),
        (EventType.REACTION, "message_reactions"),
        (EventType.MESSAGE_EDIT, "message_edits"),
        (EventType.POSTBACK, "messaging_postbacks"),
        (EventType.REFERRAL, "messaging_referrals"),
        (EventType.OPTIN, "messaging_optins"),
        (EventType.APP_ROLES, "messaging_handovers"),
        (EventType.POLICY_ENFORCEMENT, "messaging_policy_enforcement"),
        (EventType.ACCOUNT_LINKING, "messaging_account_linking"),
        (EventType.GAME_PLAY, "messaging_game_plays"),
        (EventType.RESPONSE_FEEDBACK, "response_feedback"),
        (EventType.MESSAGING_FEEDBACK, "messaging_feedback"),
    ],
)
def test_subscription_field_per_event_type(event_type: EventType, field: str) -> None:
    assert subscription_field(event_type) == field
    assert subscription_field(event_type, standby=True) == "standby"


def test_policy_enforcement_and_app_roles_have_no_sender(build: EventBuilder) -> None:
    assert "sender" not in build.policy_enforcement(PAGE).event
    assert "sender" not in build.app_roles(PAGE, {APP: ["primary_receiver"]}).event
    assert "reason" not in build.policy_enforcement(PAGE, "unblock").event["policy_enforcement"]


def test_echo_inverts_sender_and_carries_app_id_as_a_number(build: EventBuilder) -> None:
    echo = build.echo(PAGE, PSID, app_id=APP, text="hi").event
    assert echo["sender"] == {"id": PAGE}
    assert echo["message"]["app_id"] == int(APP)
    assert "metadata" not in echo["message"]


def test_sticker_arrives_as_sticker_plus_image_copy_during_the_transition(
    build: EventBuilder,
) -> None:
    items = build.sticker(PAGE, PSID).event["message"]["attachments"]
    assert [a["type"] for a in items] == ["sticker", "image"]
    assert all(a["payload"]["sticker_id"] == 369239263222822 for a in items)


def test_standby_copy_goes_to_standby_and_postbacks_lose_their_payload(
    build: EventBuilder,
) -> None:
    standby = as_standby(build.postback(PAGE, PSID, "SECRET_PAYLOAD"))
    assert standby.field == "standby"
    assert "payload" not in standby.event["postback"]
    body = envelope([standby.entry(time_ms=1)])
    assert "standby" in body["entry"][0] and "messaging" not in body["entry"][0]
    [parsed] = parse_envelope(body)
    assert parsed.kind is EventKind.STANDBY and parsed.standby
    with pytest.raises(ValueError):
        as_standby(build.reaction(PAGE, PSID, "m_a"))


def test_standby_text_built_directly_is_parsed_as_standby(build: EventBuilder) -> None:
    built = build.text(PAGE, PSID, "hi", standby=True)
    [parsed] = parse_envelope(envelope([built.entry(time_ms=1)]))
    assert parsed.kind is EventKind.STANDBY
    assert not built.expects_reply


def test_mids_are_m_prefixed_url_safe_and_reproducible_with_a_seed() -> None:
    clock = ControllableClock(START, frozen=True)
    first = [EventBuilder(clock, random.Random(9)).new_mid() for _ in range(3)]
    again = [EventBuilder(clock, random.Random(9)).new_mid() for _ in range(3)]
    assert first == again
    b = EventBuilder(clock, random.Random(9))
    mids = {b.new_mid() for _ in range(500)}
    assert len(mids) == 500
    for mid in mids:
        assert mid.startswith("m_") and len(mid) > 20
        assert set(mid[2:]) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_timestamps_follow_the_clock_in_epoch_milliseconds() -> None:
    clock = ControllableClock(START, frozen=True)
    b = EventBuilder(clock)
    first = b.text(PAGE, PSID, "a").timestamp_ms
    clock.advance(1.5)
    assert b.text(PAGE, PSID, "b").timestamp_ms - first == 1500


def test_envelope_batches_entries_of_several_pages(build: EventBuilder) -> None:
    a = build.text(PAGE, PSID, "a")
    b = build.text("999", "888", "b")
    body = envelope([a.entry(time_ms=10), b.entry(time_ms=10)])
    assert body["object"] == "page"
    assert [e["id"] for e in body["entry"]] == [PAGE, "999"]
    assert [len(e["messaging"]) for e in body["entry"]] == [1, 1]
    assert [ev.page_id for ev in parse_envelope(body)] == [PAGE, "999"]


def test_receipts_and_notices_expect_no_reply(build: EventBuilder) -> None:
    assert build.text(PAGE, PSID, "hi").expects_reply
    assert build.postback(PAGE, PSID, "X").expects_reply
    for built in (
        build.read(PAGE, PSID, 1),
        build.delivery(PAGE, PSID, None, 1),
        build.echo(PAGE, PSID, app_id=APP, text="x"),
        build.policy_enforcement(PAGE),
    ):
        assert not built.expects_reply
