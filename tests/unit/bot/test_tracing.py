"""Tracer provider from OTEL_* variables and traceparent round trips."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from bot.tracing import (
    context_from_traceparent,
    link_from_traceparent,
    otlp_requested,
    traceparent_of,
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ],
)
def test_otlp_export_only_when_the_environment_asks(
    environ: dict[str, str], expected: bool
) -> None:
    assert otlp_requested(environ) is expected


def test_traceparent_round_trips_to_a_parent_context_and_a_link() -> None:
    tracer = TracerProvider().get_tracer("test")
    producer = tracer.start_span("send bot.inbound")
    traceparent = traceparent_of(producer)
    assert traceparent is not None
    link = link_from_traceparent(traceparent)
    assert link is not None
    assert (link.context.trace_id, link.context.span_id) == (
        producer.get_span_context().trace_id,
        producer.get_span_context().span_id,
    )
    child = tracer.start_span("process bot.inbound", context=context_from_traceparent(traceparent))
    assert child.parent is not None and child.parent.span_id == producer.get_span_context().span_id


@pytest.mark.parametrize(
    "value",
    [None, "", "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", "01-abc-def-01"],
)
def test_invalid_traceparent_gives_no_context(value: str | None) -> None:
    assert context_from_traceparent(value) is None
    assert link_from_traceparent(value) is None
