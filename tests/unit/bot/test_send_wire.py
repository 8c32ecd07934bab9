"""Send API wire format: batch entries, batch bodies and per-call answers (pure)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, quote_plus, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jsonlog import Redactor
from bot.retry import ErrorClass
from bot.send_wire import (
    MAX_DETAIL,
    UnencodableCall,
    batch_body,
    batch_item,
    call_fields,
    decode_answer,
    decode_batch,
    encode_call,
    form_quote,
    log_detail,
    single_body,
)

PAGE, USER = "104501234567890", "6543210987654321"


def part(code: int, body: object) -> dict[str, object]:
    return {"code": code, "body": json.dumps(body)}


def graph_error(code: int, subcode: int | None = None) -> dict[str, object]:
    error: dict[str, object] = {"message": "boom", "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def test_a_batch_entry_is_a_form_body_with_json_values_and_no_token() -> None:
    fields = call_fields(USER, {"text": "hé & = ?"}, "MESSAGE_TAG", "HUMAN_AGENT")
    item = batch_item(PAGE, fields)
    assert (item["method"], item["relative_url"]) == ("POST", f"{PAGE}/messages")
    form = dict(parse_qsl(item["body"], strict_parsing=True))
    assert json.loads(form["recipient"]) == {"id": USER}
    assert json.loads(form["message"]) == {"text": "hé & = ?"}
    assert (form["messaging_type"], form["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert "access_token" not in form


# Any text a reply can carry: every code point but the lone surrogates encode_call refuses.
_sendable_text = st.text(st.characters(blacklist_categories=["Cs"]))


@given(_sendable_text)
def test_form_quoting_is_the_standard_quote_plus(text: str) -> None:
    assert form_quote(text) == quote_plus(text, safe="")


@given(_sendable_text, st.none() | st.text(alphabet="0123456789abcdef", min_size=1))
def test_a_batch_entry_body_is_what_urlencode_gives(text: str, proof: str | None) -> None:
    fields = call_fields(USER, {"text": text, "metadata": "mhb1:7:" + text}, "RESPONSE", None)
    form = {
        k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        for k, v in fields.items()
    }
    if proof:
        form["appsecret_proof"] = proof
    assert batch_item(PAGE, fields, proof)["body"] == urlencode(form)


def test_the_batch_body_carries_credentials_once_and_asks_for_no_headers() -> None:
    items = [
        batch_item(PAGE, call_fields(USER, {"text": str(i)}, "RESPONSE", None)) for i in (1, 2)
    ]
    body = json.loads(batch_body(items, {"access_token": "tok", "appsecret_proof": "p"}))
    assert body == {
        "access_token": "tok",
        "appsecret_proof": "p",
        "include_headers": "false",
        "batch": items,
    }


def test_each_part_is_classified_like_a_single_call() -> None:
    content = json.dumps(
        [
            part(200, {"recipient_id": USER, "message_id": "m_1"}),
            part(400, graph_error(190)),
            part(500, {"error": {"code": 2, "is_transient": True, "message": "retry"}}),
            part(400, graph_error(10, 2018278)),
            part(400, graph_error(1, 1357046)),
        ]
    ).encode()
    answers = decode_batch(200, content, 5)
    assert answers[0].ok and answers[0].message_id == "m_1"
    assert [(a.label, a.error_class) for a in answers[1:]] == [
        ("190", ErrorClass.PERMANENT),
        ("2", ErrorClass.TRANSIENT),
        ("2018278", ErrorClass.PERMANENT),
        ("1", ErrorClass.RISKY),
    ]
    assert answers[3].http_status == 400 and answers[3].error_subcode == 2018278


def test_a_timed_out_part_is_risky_because_it_may_have_run() -> None:
    answers = decode_batch(200, b'[null, {"code": 200, "body": "{}"}]', 2)
    assert (answers[0].label, answers[0].error_class) == ("timeout", ErrorClass.RISKY)
    assert answers[1].ok


def test_a_whole_batch_failure_applies_to_every_call() -> None:
    server_error = decode_batch(502, b"bad gateway", 3)
    assert [(a.label, a.error_class) for a in server_error] == [
        ("http_5xx", ErrorClass.TRANSIENT)
    ] * 3
    bad_token = decode_batch(400, json.dumps(graph_error(190)).encode(), 2)
    assert [a.error_class for a in bad_token] == [ErrorClass.PERMANENT] * 2


def test_malformed_or_short_batch_answers_are_risky_for_the_calls_left_out() -> None:
    assert all(a.error_class is ErrorClass.RISKY for a in decode_batch(200, b"{}", 2))
    assert all(a.error_class is ErrorClass.RISKY for a in decode_batch(200, b"nope", 2))
    short = decode_batch(200, json.dumps([part(200, {})]).encode(), 3)
    assert [a.ok for a in short] == [True, False, False]
    assert short[2].error_class is ErrorClass.RISKY
    odd = decode_batch(200, b'[7, {"body": "{}"}, {"code": 200, "body": "<html>"}]', 3)
    assert [(a.label, a.error_class) for a in odd] == [("malformed", ErrorClass.RISKY)] * 3


@pytest.mark.parametrize("content", [b"", b"<html>", b"[]", b'"m_1"'])
def test_an_unreadable_2xx_answer_is_risky(content: bytes) -> None:
    answer = decode_answer(200, content)
    assert not answer.ok
    assert (answer.label, answer.error_class, answer.http_status) == (
        "malformed",
        ErrorClass.RISKY,
        200,
    )


def test_a_sender_action_answer_without_message_id_is_a_success() -> None:
    answer = decode_answer(200, json.dumps({"recipient_id": USER}).encode())
    assert answer.ok and answer.message_id is None


def test_a_sender_action_goes_without_message_and_a_persona_top_level() -> None:
    typing = call_fields(USER, {}, "RESPONSE", None, sender_action="typing_on", persona_id="42")
    assert typing == {"recipient": {"id": USER}, "sender_action": "typing_on", "persona_id": "42"}
    reaction = {"message_id": "m_1", "reaction": "\U0001f60a"}
    react = call_fields(USER, {"payload": reaction}, "RESPONSE", None, sender_action="react")
    assert react == {"recipient": {"id": USER}, "sender_action": "react", "payload": reaction}
    said = call_fields(USER, {"text": "hi"}, "RESPONSE", None, persona_id="42")
    assert said["persona_id"] == "42" and said["message"] == {"text": "hi"}


def test_metadata_is_passed_through_unchanged_single_and_batched() -> None:
    metadata = '{"k":"r-1:0","app":"ordré & co"}' + "x" * 900
    fields = call_fields(USER, {"text": "hi", "metadata": metadata}, "RESPONSE", None)
    single = json.loads(single_body(encode_call(fields), {"access_token": "tok"}))
    assert single["message"]["metadata"] == metadata
    form = dict(parse_qsl(batch_item(PAGE, fields)["body"]))
    assert json.loads(form["message"])["metadata"] == metadata


def test_the_single_body_is_the_encoded_call_with_credentials_spliced_in() -> None:
    fields = call_fields(USER, {"text": "hé"}, "RESPONSE", None)
    body = single_body(encode_call(fields), {"access_token": "tok", "appsecret_proof": "p"})
    assert json.loads(body) == {**fields, "access_token": "tok", "appsecret_proof": "p"}


@pytest.mark.parametrize(
    "message",
    [
        {"text": "truncated emoji \ud83d"},  # a lone surrogate
        {"text": "ok", "metadata": "\udfff"},
        {"text": "nan", "quick_replies": [{"payload": float("nan")}]},
        {"text": "set", "attachment": {1, 2}},
    ],
    ids=["lone_surrogate", "surrogate_in_metadata", "nan", "not_json"],
)
def test_a_call_that_cannot_be_encoded_is_refused_before_any_batch(
    message: dict[str, object],
) -> None:
    with pytest.raises(UnencodableCall) as raised:
        encode_call(call_fields(USER, message, "RESPONSE", None))
    assert "truncated" not in str(raised.value)  # the reason never quotes the text


def test_a_batch_entry_repeats_the_appsecret_proof_for_its_own_call() -> None:
    item = batch_item(PAGE, call_fields(USER, {"text": "x"}, "RESPONSE", None), proof="p")
    form = dict(parse_qsl(item["body"]))
    assert form["appsecret_proof"] == "p" and "access_token" not in form


def test_secrets_are_redacted_before_the_detail_is_cut() -> None:
    token = "EAAB_page_token_" + "z" * 40
    straddling = "e" * (MAX_DETAIL - 10) + token + " and more"
    logged = log_detail(straddling, Redactor([token]))
    assert len(logged) == MAX_DETAIL
    assert "EAAB" not in logged and logged.endswith("[REDACTED]")
    # An unknown secret in a query fragment straddling the cut is caught by its name.
    query = "e" * (MAX_DETAIL - 20) + "&appsecret_proof=" + "9" * 64
    logged = log_detail(query, Redactor())
    assert "9" not in logged and logged.endswith("appsecret_proof=[RE")


def test_an_answer_without_a_graph_envelope_is_classified_by_status() -> None:
    assert decode_answer(503, b"").error_class is ErrorClass.TRANSIENT
    assert decode_answer(429, b"slow down").error_class is ErrorClass.THROTTLED
    assert decode_answer(404, b"<html>").label == "http_4xx"
