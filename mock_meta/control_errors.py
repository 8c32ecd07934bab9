"""Control-API answers that can always be encoded, errors included.

Every ``/_mock/`` answer, errors included, goes out as ASCII JSON, so a lone surrogate a
bot sent through the Send API (kept verbatim in the journal) or one quoted in a reason can
never turn a 4xx into a 500 that closes a pooled keep-alive connection.

>>> printable("bad \\ud800 key")
'bad \\\\ud800 key'
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

MAX_REASONS = 3


class SafeJSONResponse(JSONResponse):
    """ASCII-only JSON (``\\uXXXX`` escapes), so any Python string encodes; NaN refused."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def printable(text: str) -> str:
    """``text`` with lone surrogates written out as ``\\udXXX``, safe in any reason."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_reason(exc: RequestValidationError) -> str:
    """``body.seconds: Input should be a finite number; ...`` without echoing the input."""
    parts = []
    for error in exc.errors()[:MAX_REASONS]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(printable(f"{where}: {error.get('msg', 'invalid')}")[:300])
    return "; ".join(parts) or "invalid request"


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return SafeJSONResponse(
        {"detail": printable(detail)[:1000]}, status_code=exc.status_code, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return SafeJSONResponse({"detail": validation_reason(exc)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Short, encodable reasons for every framework error (the input is never echoed)."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
