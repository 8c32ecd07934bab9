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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bot.metrics import SEND_ERROR_CODES, error_code_label
from bot.retry import ErrorClass, classify_graph_error

MAX_DETAIL = 2000  # characters of an error body kept for the log line


@dataclass(frozen=True, slots=True)
class Answer:
    """Graph's answer to one call (from a plain response or one batch part).

    ``detail`` is raw text for the log and may quote secrets: redact before logging.
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
    psid: str, message: dict[str, Any], messaging_type: str, tag: str | None
) -> dict[str, Any]:
    """The Send API fields of one call, without credentials."""
    fields: dict[str, Any] = {
        "recipient": {"id": psid},
        "messaging_type": messaging_type,
        "message": message,
    }
    if tag:
        fields["tag"] = tag
    return fields


def single_body(fields: dict[str, Any], credentials: dict[str, str]) -> bytes:
    """JSON body for ``POST /{version}/{page_id}/messages``; credentials travel in it."""
    return _dumps({**fields, **credentials}).encode()


def batch_item(page_id: str, fields: dict[str, Any]) -> dict[str, str]:
    """One batch entry: a form-encoded body whose object values are JSON (no token: the
    batch's own ``access_token`` applies to every entry)."""
    form = {k: v if isinstance(v, str) else _dumps(v) for k, v in fields.items()}
    return {"method": "POST", "relative_url": f"{page_id}/messages", "body": urlencode(form)}


def batch_body(items: list[dict[str, str]], credentials: dict[str, str]) -> bytes:
    """JSON body for ``POST /{version}/`` carrying ``items`` (at most 50, reference §8)."""
    return _dumps({**credentials, "include_headers": "false", "batch": items}).encode()


def decode_answer(status: int, content: bytes | str) -> Answer:
    """Classify one HTTP answer (or batch part) exactly as the single-call path always has."""
    payload = _json_or_none(content)
    if 200 <= status < 300:
        message_id = payload.get("message_id") if isinstance(payload, dict) else None
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
        detail=text[:MAX_DETAIL],
    )


def transport_failure(label: str, detail: str) -> Answer:
    """No answer at all (``label`` is ``network`` or ``timeout``): worth retrying."""
    return Answer(ok=False, error_class=ErrorClass.TRANSIENT, label=label, detail=detail)


def decode_batch(status: int, content: bytes, calls: int) -> list[Answer]:
    """One ``Answer`` per call of a batch, in request order.

    A failed batch request as a whole (non-2xx) gives every call that request's answer, so a
    5xx is transient for all and a 190 permanent for all; a malformed 2xx answer is transient.
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
        return transport_failure("timeout", "batch part timed out")
    if not isinstance(part, dict):
        return _malformed("batch part is not an object")
    code, body = _as_int(part.get("code")), part.get("body")
    if code is None:
        return _malformed("batch part has no code")
    return decode_answer(code, body if isinstance(body, str) else "")


def _malformed(detail: str) -> Answer:
    return Answer(ok=False, error_class=ErrorClass.TRANSIENT, label="other", detail=detail)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


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
