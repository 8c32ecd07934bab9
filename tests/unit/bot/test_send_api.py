"""HttpSendApi against an httpx.MockTransport: retries, classification, metrics, secrecy, spans."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics
from bot.retry import ErrorClass
from bot.send_api import HttpSendApi
from bot.send_wire import MAX_DETAIL
from bot.settings import BotSettings
from tests.unit.bot.send_fakes import raising

PAGE, USER = "104501234567890", "6543210987654321"
TOKEN = "tok_SECRET_page_token_123"
APP_SECRET = "app_secret_for_tests"
Responder = Callable[[httpx.Request], httpx.Response]


def settings(**overrides: Any) -> BotSettings:
    values: dict[str, Any] = {
        "verify_token": "verify",
        "app_secret": APP_SECRET,
        "page_access_token": TOKEN,
        "page_id": PAGE,
        "graph_api_base": "http://graph.test",
        "graph_api_version": "v25.0",
        "send_max_attempts": 4,
        "send_backoff_base_seconds": 0.01,
        "send_backoff_max_seconds": 0.05,
        **overrides,
    }
    return BotSettings(**values)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"recipient_id": USER, "message_id": "m_sent"})


def graph_error(
    code: int, subcode: int | None = None, status: int = 400, **extra: Any
) -> Responder:
    error: dict[str, Any] = {"message": f"(#{code}) boom", "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": error})

    return respond


class Graph:
    """A scripted Graph: answers with the next responder, repeating the last one."""

    def __init__(self, *script: Responder) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        responder = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return responder(request)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


class Harness:
    def __init__(self, graph: Graph, *, sampler: Sampler | None = None, **overrides: Any) -> None:
        self.registry = CollectorRegistry()
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=sampler)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.sleeps: list[float] = []
        self.api = HttpSendApi(
            settings(**overrides),
            BotMetrics(self.registry),
            tracer_provider=provider,
            transport=httpx.MockTransport(graph),
            sleep=self._sleep,
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def send(h: Harness, **kwargs: Any) -> Any:
    try:
        return await h.api.send(PAGE, USER, {"text": "hi"}, **kwargs)
    finally:
        await h.api.aclose()


async def test_success_posts_json_to_the_page_messages_url() -> None:
    graph = Graph(ok)
    result = await send(Harness(graph))
    assert (result.ok, result.message_id, result.attempts) == (True, "m_sent", 1)
    request = graph.requests[0]
    assert str(request.url) == f"http://graph.test/v25.0/{PAGE}/messages"
    assert graph.bodies[0] == {
        "recipient": {"id": USER},
        "messaging_type": "RESPONSE",
        "message": {"text": "hi"},
        "access_token": TOKEN,
    }


async def test_server_error_then_success_delivers_once_and_counts_a_retry() -> None:
    graph = Graph(lambda r: httpx.Response(502, text="bad gateway"), ok)
    h = Harness(graph)
    result = await send(h)
    assert result.ok and result.attempts == 2
    assert len(graph.requests) == 2
    assert h.sample("bot_send_api_retries_total", error_code="http_5xx") == 1
    assert (
        h.sample("bot_send_api_requests_total", outcome="transient_error", error_code="http_5xx")
        == 1
    )
    assert h.sample("bot_send_api_requests_total", outcome="success", error_code="none") == 1


async def test_invalid_token_is_not_retried() -> None:
    graph = Graph(graph_error(190))
    h = Harness(graph)
    result = await send(h)
    assert not result.ok and result.error_class is ErrorClass.PERMANENT
    assert (result.error_code, result.http_status, result.attempts) == (190, 400, 1)
    assert len(graph.requests) == 1 and h.sleeps == []
    assert h.sample("bot_send_api_requests_total", outcome="permanent_error", error_code="190") == 1


async def test_transient_code_2_is_retried_until_it_succeeds() -> None:
    graph = Graph(graph_error(2, status=500, is_transient=True), graph_error(2, status=500), ok)
    h = Harness(graph)
    result = await send(h)
    assert result.ok and result.attempts == 3
    assert h.sample("bot_send_api_retries_total", error_code="2") == 2


async def test_rate_limit_613_is_retried_with_a_bounded_longer_backoff() -> None:
    graph = Graph(graph_error(613))
    h = Harness(graph)
    result = await send(h)
    assert not result.ok and result.transient and result.error_class is ErrorClass.THROTTLED
    assert len(graph.requests) == 4 == result.attempts
    assert len(h.sleeps) == 3
    assert all(0 <= s <= 2 * 0.05 for s in h.sleeps)  # throttle cap: 2 x SEND_API_BACKOFF_MAX
    assert h.sample("bot_send_api_retries_total", error_code="613") == 3


async def test_invalid_json_reply_is_risky_and_not_retried() -> None:
    graph = Graph(graph_error(1, 1357046))
    result = await send(Harness(graph))
    assert result.error_class is ErrorClass.RISKY and not result.transient
    assert len(graph.requests) == 1


async def test_outside_window_error_is_labelled_with_its_subcode() -> None:
    h = Harness(Graph(graph_error(10, 2018278)))
    result = await send(h)
    assert (result.error_code, result.error_subcode) == (10, 2018278)
    assert (
        h.sample("bot_send_api_requests_total", outcome="permanent_error", error_code="2018278")
        == 1
    )


async def test_failures_before_the_request_was_written_are_retried() -> None:
    script = [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError]
    h = Harness(Graph(*map(raising, script), ok), send_max_attempts=5)
    result = await send(h)
    assert result.ok and result.attempts == 5
    assert h.sample("bot_send_api_retries_total", error_code="network") == 2
    assert h.sample("bot_send_api_retries_total", error_code="timeout") == 2


@pytest.mark.parametrize(
    ("responder", "label"),
    [
        (raising(httpx.ReadTimeout), "timeout"),
        (raising(httpx.ReadError), "reset"),
        (raising(httpx.RemoteProtocolError), "reset"),
        (lambda r: httpx.Response(200, text="<html>upstream</html>"), "malformed"),
        (lambda r: httpx.Response(200), "malformed"),
    ],
    ids=["read_timeout", "reset", "disconnected", "html_2xx", "empty_2xx"],
)
async def test_a_call_whose_answer_was_lost_is_risky_and_never_retried(
    responder: Responder, label: str
) -> None:
    graph = Graph(responder, ok)
    h = Harness(graph)
    result = await send(h)
    assert not result.ok and not result.transient
    assert (result.error_class, result.error_label, result.attempts) == (
        ErrorClass.RISKY,
        label,
        1,
    )
    assert len(graph.requests) == 1 and h.sleeps == []
    assert h.sample("bot_send_api_requests_total", outcome="uncertain_error", error_code=label) == 1


async def test_a_graph_that_never_answers_is_given_up_on_within_the_budget_as_risky() -> None:
    class Silent(Graph):
        async def __call__(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
            self.requests.append(request)
            await asyncio.Event().wait()  # a server that trickles nothing, forever
            raise AssertionError("unreachable")

    graph = Silent(ok)
    result = await send(Harness(graph, send_timeout_seconds=0.2))
    assert (result.error_class, result.error_label, result.attempts) == (
        ErrorClass.RISKY,
        "timeout",
        1,
    )
    assert len(graph.requests) == 1


async def test_a_sender_action_is_sent_without_a_message_and_as_a_persona() -> None:
    graph = Graph(lambda r: httpx.Response(200, json={"recipient_id": USER}))
    h = Harness(graph)
    result = await h.api.send(PAGE, USER, {}, sender_action="typing_on", persona_id="777")
    await h.api.aclose()
    assert result.ok and result.message_id is None
    assert graph.bodies[0] == {
        "recipient": {"id": USER},
        "sender_action": "typing_on",
        "persona_id": "777",
        "access_token": TOKEN,
    }


async def test_a_message_goes_as_a_persona_with_its_metadata_unchanged() -> None:
    graph = Graph(ok)
    h = Harness(graph)
    message = {"text": "hi", "metadata": '{"k":"evt-1:0","app":"x & y"}'}
    await h.api.send(PAGE, USER, message, persona_id="777")
    await h.api.aclose()
    assert graph.bodies[0]["persona_id"] == "777"
    assert graph.bodies[0]["message"] == message


async def test_a_message_that_cannot_be_encoded_fails_permanently_without_a_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = Graph(ok)
    h = Harness(graph)
    caplog.set_level(logging.WARNING, logger="bot.send_api")
    result = await h.api.send(PAGE, USER, {"text": "secret words \ud83d"})
    await h.api.aclose()
    assert not result.ok and graph.requests == []
    assert (result.error_class, result.error_label, result.attempts) == (
        ErrorClass.PERMANENT,
        "unencodable",
        0,
    )
    assert (
        h.sample("bot_send_api_requests_total", outcome="permanent_error", error_code="unencodable")
        == 1
    )
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "UnicodeEncodeError" in logged and "secret words" not in logged


async def test_a_secret_straddling_the_log_cut_is_redacted_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()

    def quote_at_the_cut(request: httpx.Request) -> httpx.Response:
        # Graph quoting the token, and then the proof, right where the log line is cut.
        return httpx.Response(400, text="e" * (MAX_DETAIL - 8) + TOKEN + " " + proof)

    graph = Graph(quote_at_the_cut)
    caplog.set_level(logging.WARNING, logger="bot.send_api")
    await send(Harness(graph, appsecret_proof=True))
    (record,) = caplog.records
    detail = record.__dict__["detail"]
    assert len(detail) == MAX_DETAIL and detail.endswith("[REDACTE")
    assert TOKEN[:4] not in detail and proof[:4] not in detail


async def test_tag_and_messaging_type_are_sent() -> None:
    graph = Graph(ok)
    await send(Harness(graph), messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    assert graph.bodies[0]["messaging_type"] == "MESSAGE_TAG"
    assert graph.bodies[0]["tag"] == "HUMAN_AGENT"


async def test_each_page_uses_its_own_token_and_others_the_default() -> None:
    graph = Graph(ok)
    h = Harness(graph, page_tokens="222=tok_other")
    await h.api.send("222", USER, {"text": "a"})
    await h.api.send("333", USER, {"text": "b"})
    await h.api.aclose()
    assert [b["access_token"] for b in graph.bodies] == ["tok_other", TOKEN]


async def test_appsecret_proof_is_the_hmac_of_the_token() -> None:
    graph = Graph(ok)
    await send(Harness(graph, appsecret_proof=True))
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert graph.bodies[0]["appsecret_proof"] == expected


async def test_token_and_proof_never_reach_url_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def echo_token(request: httpx.Request) -> httpx.Response:
        # A hostile or buggy server quoting our credentials back in its error body.
        return httpx.Response(400, text=request.content.decode())

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {request.content.decode()}", request=request)

    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    graph = Graph(refuse, echo_token)
    caplog.set_level(logging.DEBUG, logger="bot.send_api")
    h = Harness(graph, appsecret_proof=True, send_max_attempts=2)
    result = await send(h)
    assert not result.ok and len(graph.requests) == 2
    assert all(TOKEN not in str(r.url) for r in graph.requests)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "[REDACTED]" in logged
    assert TOKEN not in logged and proof not in logged
    assert TOKEN not in repr(result)
    # The client span records the exception (message and stack trace): redacted as well.
    spans = h.exporter.get_finished_spans()
    recorded = str([(s.attributes, [e.attributes for e in s.events]) for s in spans])
    assert "exception.message" in recorded and "[REDACTED]" in recorded
    assert TOKEN not in recorded and proof not in recorded


async def test_one_client_span_per_attempt_with_traceparent_injected() -> None:
    graph = Graph(lambda r: httpx.Response(503), ok)
    h = Harness(graph)
    await send(h)
    spans = [s for s in h.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(spans) == 2
    assert all("traceparent" in r.headers for r in graph.requests)
    parent_ids = {r.headers["traceparent"].split("-")[2] for r in graph.requests}
    assert parent_ids == {format(s.context.span_id, "016x") for s in spans}
    assert all(TOKEN not in str(dict(s.attributes or {})) for s in spans)


async def test_without_an_exporter_graph_still_gets_the_callers_trace() -> None:
    # What the bot runs with when no OTLP endpoint is set: nothing can be recorded.
    graph = Graph(ok)
    h = Harness(graph, sampler=ALWAYS_OFF)
    caller = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(caller)):
        assert (await send(h)).ok
    version, trace_id, span_id, flags = graph.requests[0].headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", format(0xABC, "032x"), "00")
    assert span_id != format(0xDEF, "016x")  # the request's own span id, in the same trace
    assert h.exporter.get_finished_spans() == ()


async def test_missing_token_is_a_permanent_failure_without_a_call() -> None:
    graph = Graph(ok)
    result = await send(Harness(graph, page_access_token="", page_id=""))
    assert not result.ok and result.error_label == "no_token" and graph.requests == []
