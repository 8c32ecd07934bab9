"""Tracer provider from OTEL_* variables and traceparent round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from bot.settings import BotSettings
from bot.tracing import (
    SEMCONV_OPT_IN,
    TracingConfigError,
    build_tracer_provider,
    context_from_traceparent,
    link_from_traceparent,
    trace_exporter_names,
    traceparent_of,
    user_attributes,
    user_hash_key,
)

SECRETS = {
    "MESSENGER_VERIFY_TOKEN": "v",
    "MESSENGER_APP_SECRET": "s",
    "MESSENGER_PAGE_ACCESS_TOKEN": "t",
}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp_proto_http"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp_proto_http"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            ["otlp_proto_grpc"],
        ),
    ],
)
def test_exporters_follow_otel_traces_exporter(
    environ: dict[str, str], expected: list[str]
) -> None:
    assert trace_exporter_names(environ) == expected


def _clean_otel_env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_") and name != SEMCONV_OPT_IN:
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def _one_span(provider: TracerProvider) -> bool:
    with provider.get_tracer("test").start_as_current_span("work") as span:
        recorded = span.is_recording()
    provider.force_flush()
    provider.shutdown()
    return recorded


def test_console_exporter_prints_spans() -> None:
    # A fresh process: the console exporter binds stdout when it is imported.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    script = (
        "from bot.tracing import build_tracer_provider\n"
        "provider = build_tracer_provider('messenger-bot')\n"
        "provider.get_tracer('t').start_span('work').end()\n"
        "provider.shutdown()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "bot-eu"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["name"] == "work"
    assert printed["resource"]["attributes"]["service.name"] == "bot-eu"


def test_no_exporter_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_otel_env(monkeypatch)
    assert not _one_span(build_tracer_provider("messenger-bot"))


def test_sampler_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_otel_env(
        monkeypatch,
        OTEL_TRACES_EXPORTER="console",
        OTEL_TRACES_SAMPLER="traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    assert not _one_span(build_tracer_provider("messenger-bot"))


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "messenger-bot"),
        ({"OTEL_SERVICE_NAME": "bot-eu"}, "bot-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=bot-us,deployment.environment=prod"}, "bot-us"),
    ],
)
def test_service_name_comes_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    _clean_otel_env(monkeypatch, OTEL_TRACES_EXPORTER="none", **variables)
    resource = build_tracer_provider("messenger-bot").resource
    assert resource.attributes["service.name"] == expected


def test_an_exporter_that_is_not_installed_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_otel_env(monkeypatch, OTEL_TRACES_EXPORTER="zipkin_json")
    with pytest.raises(TracingConfigError, match="zipkin_json"):
        build_tracer_provider("messenger-bot")


def test_user_ids_are_hashed_unless_the_setting_says_raw() -> None:
    hashed = BotSettings(**SECRETS)
    raw = BotSettings(**SECRETS, TRACE_USER_IDS="raw")
    by_hash = user_attributes("6543210987654321", hash_key=user_hash_key(hashed))
    assert set(by_hash) == {"user.hash"} and "6543210987654321" not in by_hash["user.hash"]
    assert by_hash == user_attributes("6543210987654321", hash_key=user_hash_key(hashed))
    assert by_hash != user_attributes("1111111111111111", hash_key=user_hash_key(hashed))
    assert user_attributes("6543210987654321", hash_key=user_hash_key(raw)) == {
        "user.id": "6543210987654321"
    }


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
