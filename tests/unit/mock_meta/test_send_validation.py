"""Every Send API rule the mock enforces, with Meta's code/subcode (reference §5–§7)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from mock_meta.graph_body import parse_send_body
from mock_meta.graph_errors import GraphError
from mock_meta.send_validation import (
    SendRules,
    ValidSend,
    appsecret_proof,
    authorize,
    extract_token,
    validate_send,
)
from mock_meta.settings import MockSettings
from mock_meta.state import PlatformState

PAGE = "104501234567890"
PSID = "6543210987654321"
TOKEN = "test_page_token"
NOW = 1_800_000_000.0
DAY = 24 * 3600.0


@pytest.fixture
def state() -> PlatformState:
    state = PlatformState.from_settings(MockSettings())
    state.record_inbound(PAGE, PSID, NOW - 60)
    return state


def send(
    state: PlatformState,
    body: dict[str, Any],
    *,
    node: str = "me",
    now: float = NOW,
    rules: SendRules | None = None,
) -> ValidSend:
    grant = state.token_grant(TOKEN)
    return validate_send(
        body, node=node, grant=grant, directory=state, now=now, rules=rules or SendRules()
    )


def error_of(state: PlatformState, body: dict[str, Any], **kwargs: Any) -> tuple[int, int | None]:
    with pytest.raises(GraphError) as info:
        send(state, body, **kwargs)
    return info.value.code, info.value.subcode


def text(value: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "message": {"text": value}, **extra}


def test_a_plain_text_reply_inside_the_window_is_accepted(state: PlatformState) -> None:
    result = send(state, text(messaging_type="RESPONSE"))
    assert (result.page_id, result.psid, result.message) == (PAGE, PSID, {"text": "hi"})
    assert result.app_id == "1234567890123456"


def test_the_page_id_path_works_like_me(state: PlatformState) -> None:
    assert send(state, text(), node=PAGE).page_id == PAGE


def test_another_page_id_in_the_path_is_an_unknown_object(state: PlatformState) -> None:
    assert error_of(state, text(), node="999") == (100, 33)


def test_an_unknown_psid_is_no_matching_user(state: PlatformState) -> None:
    body = {"recipient": {"id": "111"}, "message": {"text": "hi"}}
    assert error_of(state, body) == (100, 2018001)


def test_a_numeric_psid_is_accepted_like_a_string(state: PlatformState) -> None:
    body = {"recipient": {"id": int(PSID)}, "message": {"text": "hi"}}
    assert send(state, body).psid == PSID


@pytest.mark.parametrize("recipient", [None, "", "6543210987654321", [], {"user_ref": "x"}])
def test_a_missing_or_malformed_recipient_is_error_100(
    state: PlatformState, recipient: Any
) -> None:
    code, _ = error_of(state, {"recipient": recipient, "message": {"text": "hi"}})
    assert code == 100


def test_message_and_sender_action_together_is_2018014(state: PlatformState) -> None:
    assert error_of(state, text(sender_action="typing_on")) == (100, 2018014)


def test_neither_message_nor_sender_action_is_error_100(state: PlatformState) -> None:
    assert error_of(state, {"recipient": {"id": PSID}}) == (100, None)


@pytest.mark.parametrize("message", [{}, {"text": ""}, {"quick_replies": [{"title": "a"}]}])
def test_an_empty_message_is_2018034(state: PlatformState, message: dict[str, Any]) -> None:
    assert error_of(state, {"recipient": {"id": PSID}, "message": message}) == (100, 2018034)


def test_text_of_2000_characters_passes_and_2001_fails(state: PlatformState) -> None:
    assert send(state, text("x" * 2000)).message == {"text": "x" * 2000}
    assert error_of(state, text("x" * 2001)) == (100, None)


def test_thirteen_quick_replies_pass_and_fourteen_fail(state: PlatformState) -> None:
    def with_replies(n: int) -> dict[str, Any]:
        replies = [{"content_type": "text", "title": f"t{i}", "payload": "P"} for i in range(n)]
        return {"recipient": {"id": PSID}, "message": {"text": "pick", "quick_replies": replies}}

    assert send(state, with_replies(13)).is_message
    assert error_of(state, with_replies(14)) == (100, None)


def test_quick_reply_title_and_payload_limits(state: PlatformState) -> None:
    def reply(**fields: Any) -> dict[str, Any]:
        return {"recipient": {"id": PSID}, "message": {"text": "q", "quick_replies": [fields]}}

    assert send(state, reply(content_type="text", title="x" * 20, payload="p" * 1000)).is_message
    assert error_of(state, reply(content_type="text", title="x" * 21)) == (100, None)
    assert error_of(state, reply(content_type="text", title="t", payload="p" * 1001)) == (100, None)
    assert error_of(state, reply(content_type="bogus")) == (100, None)
    assert send(state, reply(content_type="user_email")).is_message


def test_metadata_must_stay_under_1000_characters(state: PlatformState) -> None:
    ok = {"recipient": {"id": PSID}, "message": {"text": "t", "metadata": "m" * 999}}
    too_long = {"recipient": {"id": PSID}, "message": {"text": "t", "metadata": "m" * 1000}}
    assert send(state, ok).is_message
    assert error_of(state, too_long) == (100, None)


def test_text_and_attachment_are_mutually_exclusive(state: PlatformState) -> None:
    attachment = {"type": "image", "payload": {"url": "https://example.com/a.png"}}
    both = {"recipient": {"id": PSID}, "message": {"text": "t", "attachment": attachment}}
    assert error_of(state, both) == (100, None)
    only_attachment = {"recipient": {"id": PSID}, "message": {"attachment": attachment}}
    assert send(state, only_attachment).is_message


@pytest.mark.parametrize(
    "attachment",
    [{"type": "sound", "payload": {}}, {"type": "image"}, {"type": "template", "payload": {}}],
)
def test_malformed_attachments_are_error_100(state: PlatformState, attachment: Any) -> None:
    body = {"recipient": {"id": PSID}, "message": {"attachment": attachment}}
    assert error_of(state, body) == (100, None)


def test_messaging_type_must_be_a_known_value(state: PlatformState) -> None:
    for value in ("RESPONSE", "UPDATE"):
        assert send(state, text(messaging_type=value)).messaging_type == value
    assert error_of(state, text(messaging_type="SHOUT")) == (100, None)


def test_omitted_messaging_type_passes_unless_required(state: PlatformState) -> None:
    assert send(state, text()).messaging_type is None
    strict = SendRules(require_messaging_type=True)
    assert error_of(state, text(), rules=strict) == (100, None)


def test_message_tag_needs_a_tag_from_the_list(state: PlatformState) -> None:
    assert error_of(state, text(messaging_type="MESSAGE_TAG")) == (100, None)
    assert error_of(state, text(messaging_type="MESSAGE_TAG", tag="WHATEVER")) == (100, None)


@pytest.mark.parametrize(
    "tag", ["ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"]
)
def test_retired_tags_are_error_100_while_enforcement_is_on(state: PlatformState, tag: str) -> None:
    body = text(messaging_type="MESSAGE_TAG", tag=tag)
    assert error_of(state, body) == (100, None)
    lenient = SendRules(enforce_retired_tags=False)
    assert send(state, body, now=NOW + 30 * DAY, rules=lenient).tag == tag


def test_customer_feedback_tag_needs_the_feedback_template(state: PlatformState) -> None:
    body = text(messaging_type="MESSAGE_TAG", tag="CUSTOMER_FEEDBACK")
    assert error_of(state, body) == (100, None)
    feedback = {"template_type": "customer_feedback", "title": "Rate us", "button_title": "Rate"}
    template = {"type": "template", "payload": feedback}
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "MESSAGE_TAG",
        "tag": "CUSTOMER_FEEDBACK",
        "message": {"attachment": template},
    }
    assert send(state, body).tag == "CUSTOMER_FEEDBACK"


def test_outside_the_24_hour_window_is_10_2018278(state: PlatformState) -> None:
    assert send(state, text(), now=NOW - 60 + DAY).is_message
    assert error_of(state, text(), now=NOW + DAY) == (10, 2018278)


def test_a_user_who_never_wrote_is_outside_the_window(state: PlatformState) -> None:
    state.create_user(page_id=PAGE, psid="42")
    body = {"recipient": {"id": "42"}, "message": {"text": "hi"}}
    assert error_of(state, body) == (10, 2018278)


def test_human_agent_tag_extends_the_window_to_seven_days(state: PlatformState) -> None:
    body = text(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    assert send(state, body, now=NOW + 6 * DAY).tag == "HUMAN_AGENT"
    assert error_of(state, body, now=NOW + 7 * DAY) == (10, 2018278)


def test_a_tag_without_messaging_type_counts_as_a_tagged_message(state: PlatformState) -> None:
    assert send(state, text(tag="HUMAN_AGENT"), now=NOW + 2 * DAY).tag == "HUMAN_AGENT"


def test_sender_actions_are_checked_and_carry_no_message(state: PlatformState) -> None:
    result = send(state, {"recipient": {"id": PSID}, "sender_action": "typing_on"})
    assert (result.sender_action, result.message, result.is_message) == ("typing_on", None, False)
    assert error_of(state, {"recipient": {"id": PSID}, "sender_action": "dance"}) == (100, None)


def test_react_needs_a_message_id_and_reaction(state: PlatformState) -> None:
    base = {"recipient": {"id": PSID}, "sender_action": "react"}
    assert error_of(state, base) == (100, None)
    assert send(state, {**base, "payload": {"message_id": "m_1", "reaction": "😊"}}).sender_action
    unreact = {
        "recipient": {"id": PSID},
        "sender_action": "unreact",
        "payload": {"message_id": "m"},
    }
    assert send(state, unreact).sender_action == "unreact"


def test_sender_actions_also_need_the_window(state: PlatformState) -> None:
    body = {"recipient": {"id": PSID}, "sender_action": "typing_on"}
    assert error_of(state, body, now=NOW + 2 * DAY) == (10, 2018278)


def test_utility_templates_may_go_outside_the_window(state: PlatformState) -> None:
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "UTILITY",
        "message": {"template": {"name": "order_update", "language": {"code": "en_US"}}},
    }
    assert send(state, body, now=NOW + 3 * DAY).messaging_type == "UTILITY"


# --- body parsing and tokens ------------------------------------------------------------


def test_form_bodies_carry_json_encoded_values() -> None:
    raw = urlencode(
        {"recipient": json.dumps({"id": PSID}), "message": '{"text":"hi"}', "access_token": "t"}
    ).encode()
    fields = parse_send_body("application/x-www-form-urlencoded", raw)
    assert fields == {"recipient": {"id": PSID}, "message": {"text": "hi"}, "access_token": "t"}


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_bodies_are_error_100(raw: bytes) -> None:
    with pytest.raises(GraphError) as info:
        parse_send_body("application/json", raw)
    assert info.value.code == 100 and info.value.http_status == 400


def test_token_is_found_in_query_body_or_bearer_header() -> None:
    assert extract_token({"access_token": "q"}, {}, None) == "q"
    assert extract_token({}, {"access_token": "b"}, None) == "b"
    assert extract_token({}, {}, "Bearer h") == "h"
    assert extract_token({}, {}, "Basic h") is None


def test_unknown_or_missing_token_is_190(state: PlatformState) -> None:
    for token in (None, "", "wrong"):
        with pytest.raises(GraphError) as info:
            authorize(token, None, directory=state, require_proof=False)
        assert info.value.code == 190
        assert "wrong" not in info.value.message


def test_appsecret_proof_is_required_when_switched_on(state: PlatformState) -> None:
    with pytest.raises(GraphError) as info:
        authorize(TOKEN, None, directory=state, require_proof=True)
    assert info.value.code == 100 and "appsecret_proof" in info.value.message
    proof = appsecret_proof("test_app_secret", TOKEN)
    assert authorize(TOKEN, proof, directory=state, require_proof=True).page_id == PAGE


def test_a_wrong_appsecret_proof_is_refused_even_when_optional(state: PlatformState) -> None:
    with pytest.raises(GraphError) as info:
        authorize(TOKEN, "00" * 32, directory=state, require_proof=False)
    assert info.value.code == 100
