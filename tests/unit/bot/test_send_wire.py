"""Send API wire format: batch entries, batch bodies and per-call answers (pure)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from bot.retry import ErrorClass
from bot.send_wire import (
    batch_body,
    batch_item,
    call_fields,
    decode_answer,
    decode_batch,
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


def test_a_timed_out_part_is_transient() -> None:
    answers = decode_batch(200, b'[null, {"code": 200, "body": "{}"}]', 2)
    assert (answers[0].label, answers[0].error_class) == ("timeout", ErrorClass.TRANSIENT)
    assert answers[1].ok


def test_a_whole_batch_failure_applies_to_every_call() -> None:
    server_error = decode_batch(502, b"bad gateway", 3)
    assert [(a.label, a.error_class) for a in server_error] == [
        ("http_5xx", ErrorClass.TRANSIENT)
    ] * 3
    bad_token = decode_batch(400, json.dumps(graph_error(190)).encode(), 2)
    assert [a.error_class for a in bad_token] == [ErrorClass.PERMANENT] * 2


def test_malformed_or_short_batch_answers_are_transient_for_the_calls_left_out() -> None:
    assert all(a.error_class is ErrorClass.TRANSIENT for a in decode_batch(200, b"{}", 2))
    assert all(a.error_class is ErrorClass.TRANSIENT for a in decode_batch(200, b"nope", 2))
    short = decode_batch(200, json.dumps([part(200, {})]).encode(), 3)
    assert [a.ok for a in short] == [True, False, False]
    assert short[2].error_class is ErrorClass.TRANSIENT
    odd = decode_batch(200, b'[7, {"body": "{}"}]', 2)
    assert [a.error_class for a in odd] == [ErrorClass.TRANSIENT] * 2


def test_an_answer_without_a_graph_envelope_is_classified_by_status() -> None:
    assert decode_answer(503, b"").error_class is ErrorClass.TRANSIENT
    assert decode_answer(429, b"slow down").error_class is ErrorClass.THROTTLED
    assert decode_answer(404, b"<html>").label == "http_4xx"
