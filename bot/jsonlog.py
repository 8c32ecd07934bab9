"""JSON lines logging with trace correlation and secret redaction.

One object per line: ``ts``, ``level``, ``logger``, ``message``, ``trace_id``, ``span_id``,
``log_type`` and any ``extra=`` fields. Registered secret values and ``access_token=...`` /
``appsecret_proof=...`` query fragments are replaced by ``[REDACTED]`` wherever they appear.

>>> configure_logging("INFO", secrets=["s3cret"])  # doctest: +SKIP
>>> logging.getLogger("bot").info("token s3cret", extra={"log_type": "event"})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

REDACTED = "[REDACTED]"
_QUERY_SECRETS = re.compile(r"(access_token|appsecret_proof)=[^&\s\"'<>]+", re.IGNORECASE)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Redactor:
    """Replaces known secret values and token query parameters in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "=" in text:
            text = _QUERY_SECRETS.sub(rf"\1={REDACTED}", text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, arguments and string extras before any handler sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self._redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; the whole line is redacted once more."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        span_context = trace.get_current_span().get_span_context()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": trace.format_trace_id(span_context.trace_id)
            if span_context.is_valid
            else None,
            "span_id": trace.format_span_id(span_context.span_id)
            if span_context.is_valid
            else None,
            "log_type": getattr(record, "log_type", "app"),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self._redact(self.formatException(record.exc_info))
        return self._redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(
    level: str | int, secrets: Iterable[str] = (), *, stream: TextIO | None = None
) -> logging.Handler:
    """Route every logger (uvicorn's too) to one JSON handler on ``stream`` (stderr)."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would print plain text; let its records reach the root.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request URL at INFO; the redactor would catch tokens, but it is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler
