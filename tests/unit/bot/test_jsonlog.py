"""JSON log lines: one object per line, trace ids, and secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from bot.jsonlog import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("DEBUG", secrets=["s3cr3t_app", "page_tok"], stream=out)
    yield out
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_extras(stream: io.StringIO) -> None:
    logging.getLogger("bot.test").info("hello %s", "world", extra={"log_type": "event", "n": 3})
    [entry] = lines(stream)
    assert entry["message"] == "hello world"
    assert (entry["level"], entry["logger"], entry["log_type"], entry["n"]) == (
        "INFO",
        "bot.test",
        "event",
        3,
    )
    assert entry["trace_id"] is None


def test_registered_secrets_and_token_parameters_are_redacted(stream: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    log.warning(
        "secret %s in args", "s3cr3t_app", extra={"url": "https://g/?access_token=EAAB123&x=1"}
    )
    log.error("proof appsecret_proof=abcdef0123 and page_tok")
    try:
        raise RuntimeError("failed with s3cr3t_app")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    for leaked in ("s3cr3t_app", "EAAB123", "abcdef0123", "page_tok"):
        assert leaked not in text
    first, second, third = lines(stream)
    assert second["message"] == "proof appsecret_proof=[REDACTED] and [REDACTED]"
    assert first["message"] == "secret [REDACTED] in args"
    assert first["url"] == "https://g/?access_token=[REDACTED]&x=1"
    assert "[REDACTED]" in str(third["exception"])


def test_lines_carry_the_current_trace_and_span_ids(stream: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("bot.test").info("inside")
    [entry] = lines(stream)
    ctx = span.get_span_context()
    assert entry["trace_id"] == f"{ctx.trace_id:032x}"
    assert entry["span_id"] == f"{ctx.span_id:016x}"
