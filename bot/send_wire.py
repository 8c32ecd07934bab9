"""Send API wire format (pure): request bodies, single and Graph batch, and their answers.

>>> fields = call_fields("6543210987654321", {"text": "hi"}, "RESPONSE", None)
>>> batch_item("104501234567890", fields)["relative_url"]
'104501234567890/messages'
>>> decode_answer(400, b'{"error":{"code":190,"message":"bad token"}}').label
'190'
>>> [a.ok for a in decode_batch(200, b'[{"code":200,"body":"{}"},null]', 2)]
[True, False]

Batch requests follow reference §8: ``POST /{version}/`` with the page token in the body and
``batch`` a list of ``{method, relative_url, body}``, each ``body`` form-encoded with
JSON-encoded values; the answer is a list of ``{code, body}`` in request order, where
``body`` is a JSON string and ``null`` marks a part that timed out.

An answer that was lost after the request went out (a ``null`` part, a malformed 2xx) is
``ErrorClass.RISKY``: Graph may have sent the message, so it must not be sent again blindly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.metrics import SEND_ERROR_CODES, error_code_label
from bot.retry import ErrorClass, classify_graph_error

MAX_DETAIL = 2000  # characters of an error body kept for the log line

# What ``urllib.parse.quote_plus(text, safe="")`` does to each UTF-8 byte, as a table for
# ``str.translate``, which runs in C: ``urlencode`` quotes byte by byte in Python, and a
# busy outbox form-encodes every reply that joins a Graph batch.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_QUOTE = {
    byte: "+" if byte == 0x20 else chr(byte) if byte in _UNRESERVED else f"%{byte:02X}"
    for byte in range(256)
}
# Compact encoders, built once: ``json.dumps`` with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_dumps_call = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class UnencodableCall(ValueError):
    """A call that cannot become a UTF-8 JSON body (a lone surrogate, NaN, a non-JSON value)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Graph's answer to one call (from a plain response or one batch part).

    ``detail`` is raw, uncut text and may quote secrets: log it only through ``log_detail``.
    """

    ok: bool
    http_status: int | None = None
    message_id: str | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_class: ErrorClass | None = None
    label: str = "none"
    detail: str = ""


def call_fields(
    psid: str,
    message: dict[str, Any],
    messaging_type: str,
    tag: str | None,
    *,
    sender_action: str | None = None,
    persona_id: str | None = None,
) -> dict[str, Any]:
    """The Send API fields of one call, without credentials.

    A ``sender_action`` call carries no message, messaging type or tag (reference §5.5); a
    ``payload`` in ``message`` becomes its top-level ``payload`` (``react``/``unreact``).
    ``message`` (``metadata`` included) is passed through unchanged.

    >>> call_fields("65", {}, "RESPONSE", None, sender_action="typing_on", persona_id="7")
    {'recipient': {'id': '65'}, 'sender_action': 'typing_on', 'persona_id': '7'}
    """
    fields: dict[str, Any] = {"recipient": {"id": psid}}
    if sender_action:
        fields["sender_action"] = sender_action
        if "payload" in message:
            fields["payload"] = message["payload"]
    else:
        fields["messaging_type"] = messaging_type
        fields["message"] = message
        if tag:
            fields["tag"] = tag
    if persona_id:
        fields["persona_id"] = persona_id
    return fields


def encode_call(fields: dict[str, Any]) -> bytes:
    """The call's JSON body (without credentials), strict UTF-8; ``UnencodableCall`` if it
    cannot be sent, so one bad reply fails alone before it can join a batch.

    >>> encode_call({"message": {"text": "\\ud83d"}})
    Traceback (most recent call last):
    ...
    bot.send_wire.UnencodableCall: UnicodeEncodeError at character 20 of the JSON body
    """
    try:
        return _dumps_call(fields).encode()
    except UnicodeEncodeError as exc:
        reason = f"UnicodeEncodeError at character {exc.start} of the JSON body"
        raise UnencodableCall(reason) from exc
    except (TypeError, ValueError, RecursionError) as exc:
        # The message text never goes into the reason: only the kind of failure.
        raise UnencodableCall(f"{type(exc).__name__}: not JSON-serialisable") from exc


def single_body(encoded: bytes, credentials: dict[str, str]) -> bytes:
    """JSON body for ``POST /{version}/{page_id}/messages``: ``encode_call``'s body with the
    credentials spliced in (they travel in the body, never in the URL)."""
    return b"%s,%s}" % (encoded[:-1], _dumps(credentials)[1:-1].encode())


def batch_item(page_id: str, fields: dict[str, Any], proof: str | None = None) -> dict[str, str]:
    """One batch entry: a form-encoded body whose object values are JSON. No token: the
    batch's own ``access_token`` applies to every entry. ``proof`` (``appsecret_proof``) is
    repeated per entry because "Require App Secret" checks every call (reference §5.1)."""
    form = [(k, v if isinstance(v, str) else _dumps(v)) for k, v in fields.items()]
    if proof:
        form.append(("appsecret_proof", proof))
    body = "&".join(f"{form_quote(k)}={form_quote(v)}" for k, v in form)
    return {"method": "POST", "relative_url": f"{page_id}/messages", "body": body}


def form_quote(text: str) -> str:
    """``text`` as a form value: ``urllib.parse.quote_plus(text, safe="")``, faster.

    >>> form_quote('{"text":"hé & ~"}')
    '%7B%22text%22%3A%22h%C3%A9+%26+~%22%7D'
    """
    return text.encode().decode("latin-1").translate(_FORM_QUOTE)


def batch_body(items: list[dict[str, str]], credentials: dict[str, str]) -> bytes:
    """JSON body for ``POST /{version}/`` carrying ``items`` (at most 50, reference §8)."""
    return _dumps({**credentials, "include_headers": "false", "batch": items}).encode()


def decode_answer(status: int, content: bytes | str) -> Answer:
    """Classify one HTTP answer (or batch part) exactly as the single-call path always has."""
    payload = _json_or_none(content)
    if 200 <= status < 300:
        if not isinstance(payload, dict):  # Graph took the call but its answer is unreadable
            return _malformed("2xx answer is not a JSON object", http_status=status)
        message_id = payload.get("message_id")
        return Answer(
            ok=True,
            http_status=status,
            message_id=message_id if isinstance(message_id, str) else None,
        )
    error = payload.get("error") if isinstance(payload, dict) else None
    code = subcode = None
    is_transient = False
    if isinstance(error, dict):
        code = _as_int(error.get("code"))
        subcode = _as_int(error.get("error_subcode"))
        is_transient = error.get("is_transient") is True
    if code is None:
        label = "http_5xx" if status >= 500 else "http_4xx"
    elif subcode is not None and str(subcode) in SEND_ERROR_CODES:
        label = str(subcode)  # the subcodes we alert on (outside window, no such user)
    else:
        label = error_code_label(code)
    text = content if isinstance(content, str) else content.decode("utf-8", "replace")
    return Answer(
        ok=False,
        http_status=status,
        error_code=code,
        error_subcode=subcode,
        error_class=classify_graph_error(status, code, subcode, is_transient),
        label=label,
        detail=text,  # cut only after redaction (log_detail), so no secret prefix survives
    )


def transport_failure(label: str, detail: str) -> Answer:
    """No answer, and the request never went out (``label``: ``network``/``timeout``):
    known not delivered, worth retrying."""
    return Answer(ok=False, error_class=ErrorClass.TRANSIENT, label=label, detail=detail)


def lost_answer(label: str, detail: str) -> Answer:
    """The request went out but its answer was lost (``reset``, ``timeout``, ``cancelled``):
    Graph may have sent the message."""
    return Answer(ok=False, error_class=ErrorClass.RISKY, label=label, detail=detail)


def log_detail(detail: str, redact: Callable[[str], str]) -> str:
    """``detail`` fit for a log line: secrets redacted first, then cut to ``MAX_DETAIL``.

    >>> from bot.jsonlog import Redactor
    >>> log_detail("x" * 1995 + "tok_SECRET", Redactor(["tok_SECRET"]))[-5:]  # not "tok_S"
    '[REDA'
    """
    return redact(detail)[:MAX_DETAIL]


def decode_batch(status: int, content: bytes, calls: int) -> list[Answer]:
    """One ``Answer`` per call of a batch, in request order.

    A failed batch request as a whole (non-2xx) gives every call that request's answer, so a
    5xx is transient for all and a 190 permanent for all. A malformed 2xx answer, a ``null``
    part and a missing part are risky: those calls may have run.
    """
    if not 200 <= status < 300:
        whole = decode_answer(status, content)
        return [whole] * calls
    parts = _json_or_none(content)
    if not isinstance(parts, list):
        bad = _malformed("batch answer is not a list")
        return [bad] * calls
    answers = [_decode_part(part) for part in parts[:calls]]
    missing = _malformed("batch answer has no part for this call")
    return answers + [missing] * (calls - len(answers))


def _decode_part(part: Any) -> Answer:
    if part is None:  # Graph gave up on this part: it may or may not have run
        return lost_answer("timeout", "batch part timed out")
    if not isinstance(part, dict):
        return _malformed("batch part is not an object")
    code, body = _as_int(part.get("code")), part.get("body")
    if code is None:
        return _malformed("batch part has no code")
    return decode_answer(code, body if isinstance(body, str) else "")


def _malformed(detail: str, http_status: int | None = None) -> Answer:
    return Answer(
        ok=False,
        http_status=http_status,
        error_class=ErrorClass.RISKY,
        label="malformed",
        detail=detail,
    )


def _json_or_none(content: bytes | str) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
