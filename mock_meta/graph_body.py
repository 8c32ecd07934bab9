"""Graph request bodies in the three encodings Meta accepts (reference §5.1, §9.5).

JSON, ``application/x-www-form-urlencoded`` with JSON-encoded values, and
``multipart/form-data`` (SDKs use it for file uploads: ``message=...`` + ``filedata=@a.png``).
Every form turns into the same field dict; an uploaded file becomes an :class:`UploadedFile`.

>>> parse_send_body("application/json", b'{"message":{"text":"hi"}}')["message"]
{'text': 'hi'}
>>> import asyncio
>>> part = b'Content-Disposition: form-data; name="recipient"\\r\\n\\r\\n{"id":"1"}'
>>> body = b"--b\\r\\n" + part + b"\\r\\n--b--\\r\\n"
>>> asyncio.run(read_fields("multipart/form-data; boundary=b", body))
{'recipient': {'id': '1'}}
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from mock_meta.graph_errors import graph_error

MAX_JSON_BYTES = 1024 * 1024
# Meta's attachment size limit is 25 MB (reference §6, 2018109 beyond it).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
_MAX_FILES = 4
_MAX_FIELDS = 100


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart call; the bytes are hashed and dropped (the mock stores none)."""

    filename: str
    content_type: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


def is_multipart(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/form-data")


def body_limit(content_type: str) -> int:
    """Largest body accepted for this encoding (uploads may be large, JSON may not)."""
    return MAX_UPLOAD_BYTES if is_multipart(content_type) else MAX_JSON_BYTES


def parse_send_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """JSON object, or form fields whose values are JSON-encoded (``recipient={"id":..}``)."""
    if not raw.strip():
        return {}
    if "application/x-www-form-urlencoded" in content_type:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise graph_error(100, None, "Invalid form-encoded body") from exc
        return {key: decode_form_value(value) for key, value in pairs}
    try:
        body = strict_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise graph_error(100, None, "Invalid JSON in request body") from exc
    if not isinstance(body, dict):
        raise graph_error(100, None, "The request body must be a JSON object")
    return body


def decode_form_value(value: str) -> Any:
    if value[:1] in ("{", "["):
        try:
            return strict_json(value)
        except (ValueError, RecursionError):  # kept as text; the field's check then fails
            return value
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 overflows to inf: no finite number, so not what was meant
        raise ValueError(f"{text[:20]} is out of range")
    return value


def strict_json(raw: str | bytes) -> Any:
    """``json.loads`` with finite numbers only (NaN, Infinity and 1e400 are refused).

    A body nested past the interpreter's limit raises ``RecursionError``; callers map it.
    """
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)


async def read_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """The call's fields, whatever the encoding; Graph's ``(#100)`` when unreadable."""
    if not is_multipart(content_type):
        return parse_send_body(content_type, raw)
    parser = MultiPartParser(
        Headers({"content-type": content_type}),
        _once(raw),
        max_files=_MAX_FILES,
        max_fields=_MAX_FIELDS,
        max_part_size=MAX_JSON_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise graph_error(100, None, f"Invalid multipart body: {str(exc)[:100]}") from None
    fields: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                fields[name] = await _uploaded(value)
            else:
                fields[name] = decode_form_value(value)
    finally:
        await form.close()
    return fields


async def _uploaded(upload: UploadFile) -> UploadedFile:
    data = await upload.read()
    return UploadedFile(
        filename=(upload.filename or "")[:200],
        content_type=(upload.content_type or "application/octet-stream")[:100],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


async def _once(raw: bytes) -> AsyncGenerator[bytes, None]:
    yield raw
