"""HttpSendApi batching: calls that wait for a slot share one Graph batch request, and each
still gets its own answer, classification, retries, metrics and secrecy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics
from bot.retry import ErrorClass
from bot.send_api import HttpSendApi, SendResult
from bot.settings import BotSettings
from tests.polling import eventually
from tests.unit.bot.send_fakes import raising

PAGE = "104501234567890"
TOKEN = "tok_SECRET_page_token_123"
APP_SECRET = "app_secret_for_tests"
BATCH_URL = "http://graph.test/v25.0/"
# What Graph answers for one call, keyed by the recipient's PSID.
Behaviour = Callable[[str], tuple[int, dict[str, Any]]]


def ok(psid: str) -> tuple[int, dict[str, Any]]:
    return 200, {"recipient_id": psid, "message_id": f"m_{psid}"}


def error(code: int, status: int = 400, **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": f"(#{code}) boom", "code": code, **extra}}


Fault = Callable[[httpx.Request], httpx.Response]


class Graph:
    """A Graph that answers single and batch calls per recipient; the first request can be
    held at a gate so that the calls behind it pile up."""

    def __init__(
        self,
        behaviour: dict[str, list[tuple[int, dict[str, Any]]]] | None = None,
        *,
        batch_faults: list[Fault] | None = None,
    ) -> None:
        self.behaviour = behaviour or {}  # psid -> answers in order (the last one repeats)
        self.batch_faults = batch_faults or []  # answers (or raises) for the next batch requests
        self.requests: list[httpx.Request] = []
        self.gate: asyncio.Event | None = None

    def answer(self, psid: str) -> tuple[int, dict[str, Any]]:
        script = self.behaviour.get(psid)
        if not script:
            return ok(psid)
        return script.pop(0) if len(script) > 1 else script[0]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        body = json.loads(request.content)
        if "batch" not in body:
            status, payload = self.answer(body["recipient"]["id"])
            return httpx.Response(status, json=payload)
        if self.batch_faults:
            return self.batch_faults.pop(0)(request)
        parts = []
        for item in body["batch"]:
            fields = dict(parse_qsl(item["body"]))
            status, payload = self.answer(json.loads(fields["recipient"])["id"])
            parts.append({"code": status, "body": json.dumps(payload)})
        return httpx.Response(200, json=parts)

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        found = [json.loads(r.content) for r in self.requests]
        return [[_item(i) for i in b["batch"]] for b in found if "batch" in b]

    @property
    def singles(self) -> list[str]:
        found = [json.loads(r.content) for r in self.requests]
        return [b["recipient"]["id"] for b in found if "batch" not in b]


def _item(item: dict[str, str]) -> dict[str, Any]:
    fields = dict(parse_qsl(item["body"]))
    return {
        "url": item["relative_url"],
        **{k: json.loads(v) if v[:1] in "{[" else v for k, v in fields.items()},
    }


class Harness:
    def __init__(self, graph: Graph, **overrides: Any) -> None:
        self.graph = graph
        self.registry = CollectorRegistry()
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        values: dict[str, Any] = {
            "verify_token": "verify",
            "app_secret": APP_SECRET,
            "page_access_token": TOKEN,
            "page_id": PAGE,
            "graph_api_base": "http://graph.test",
            "graph_api_version": "v25.0",
            "send_max_attempts": 3,
            "send_max_in_flight": 1,
            **overrides,
        }
        self.sleeps: list[float] = []
        self.provider = provider
        self.api = HttpSendApi(
            BotSettings(**values),
            BotMetrics(self.registry),
            tracer_provider=provider,
            transport=httpx.MockTransport(graph),
            sleep=self._sleep,
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def send_piled_up(
        self, psids: list[str], texts: dict[str, str] | None = None, *, queued: int | None = None
    ) -> list[SendResult]:
        """Send to ``psids[0]`` and hold its request until the others are queued behind it
        (``queued`` of them: calls refused before the network never queue)."""
        text = (texts or {}).get
        gate = self.graph.gate = asyncio.Event()
        first = asyncio.create_task(self.api.send(PAGE, psids[0], {"text": psids[0]}))
        await eventually(lambda: bool(self.graph.requests))
        rest = [
            asyncio.create_task(self.api.send(PAGE, p, {"text": text(p, p)})) for p in psids[1:]
        ]
        expected = len(rest) if queued is None else queued
        await eventually(lambda: self.api.queued >= expected)
        gate.set()
        try:
            return list(await asyncio.gather(first, *rest))
        finally:
            await self.api.aclose()


async def test_calls_that_pile_up_go_out_as_one_batch_with_their_own_answers() -> None:
    h = Harness(Graph())
    results = await h.send_piled_up(["1", "2", "3", "4"])
    assert [(r.ok, r.message_id, r.attempts) for r in results] == [
        (True, f"m_{p}", 1) for p in "1234"
    ]
    assert h.graph.singles == ["1"]
    assert [[i["recipient"]["id"] for i in b] for b in h.graph.batches] == [["2", "3", "4"]]
    batch = h.graph.requests[1]
    assert str(batch.url) == BATCH_URL
    body = json.loads(batch.content)
    assert body["access_token"] == TOKEN and body["include_headers"] == "false"
    assert h.graph.batches[0][0] == {
        "url": f"{PAGE}/messages",
        "recipient": {"id": "2"},
        "messaging_type": "RESPONSE",
        "message": {"text": "2"},
    }
    assert h.sample("bot_send_api_requests_total", outcome="success", error_code="none") == 4
    assert h.sample("bot_send_api_request_duration_seconds_count", outcome="success") == 4


async def test_sends_one_after_another_never_batch() -> None:
    graph = Graph()
    h = Harness(graph, send_max_in_flight=4)
    for psid in ("1", "2", "3"):
        assert (await h.api.send(PAGE, psid, {"text": "hi"})).ok
    await h.api.aclose()
    assert graph.singles == ["1", "2", "3"] and graph.batches == []


async def test_a_batch_never_exceeds_the_batch_maximum() -> None:
    h = Harness(Graph(), send_batch_max=2)
    results = await h.send_piled_up([str(i) for i in range(6)])
    assert all(r.ok for r in results)
    assert [len(b) for b in h.graph.batches] == [2, 2]
    assert h.graph.singles == ["0", "5"]  # a lone call left over goes as a plain call


async def test_batching_off_sends_every_call_alone() -> None:
    h = Harness(Graph(), send_batch=False)
    results = await h.send_piled_up(["1", "2", "3"])
    assert all(r.ok for r in results)
    assert h.graph.singles == ["1", "2", "3"] and h.graph.batches == []


async def test_in_a_mixed_batch_only_the_transient_call_is_retried_alone() -> None:
    graph = Graph(
        {
            "bad_token": [error(190)],
            "busy": [error(2, status=500, is_transient=True), ok("busy")],
        }
    )
    h = Harness(graph)
    first, good, bad, busy = await h.send_piled_up(["first", "good", "bad_token", "busy"])
    assert first.ok and good.ok and good.attempts == 1
    assert not bad.ok and bad.error_class is ErrorClass.PERMANENT
    assert (bad.error_code, bad.http_status, bad.attempts) == (190, 400, 1)
    assert busy.ok and busy.attempts == 2 and busy.message_id == "m_busy"
    assert [[i["recipient"]["id"] for i in b] for b in graph.batches] == [
        ["good", "bad_token", "busy"]
    ]
    assert graph.singles == ["first", "busy"]  # the retry went alone; the 190 never again
    assert len(h.sleeps) == 1
    assert h.sample("bot_send_api_requests_total", outcome="success", error_code="none") == 3
    assert h.sample("bot_send_api_requests_total", outcome="permanent_error", error_code="190") == 1
    assert h.sample("bot_send_api_requests_total", outcome="transient_error", error_code="2") == 1
    assert h.sample("bot_send_api_retries_total", error_code="2") == 1
    assert h.sample("bot_send_api_retries_total", error_code="190") == 0


async def test_a_batch_that_fails_as_a_whole_is_transient_for_every_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = Graph(batch_faults=[lambda r: httpx.Response(502, text="bad gateway")])
    h = Harness(graph, send_max_attempts=1)
    caplog.set_level(logging.WARNING, logger="bot.send_api")
    results = await h.send_piled_up(["first", "a", "b", "c"])
    assert results[0].ok
    assert [(r.ok, r.error_label, r.transient) for r in results[1:]] == [
        (False, "http_5xx", True)
    ] * 3
    assert (
        h.sample("bot_send_api_requests_total", outcome="transient_error", error_code="http_5xx")
        == 3
    )
    assert len(caplog.records) == 1  # one log line for the batch, not one per call


async def test_calls_of_a_failed_batch_are_retried_and_delivered() -> None:
    graph = Graph(batch_faults=[lambda r: httpx.Response(503)])
    h = Harness(graph, send_max_attempts=3)
    results = await h.send_piled_up(["first", "a", "b"])
    assert all(r.ok for r in results)
    assert [r.attempts for r in results] == [1, 2, 2]
    assert h.sample("bot_send_api_retries_total", error_code="http_5xx") == 2


async def test_a_network_failure_of_a_batch_is_transient_for_every_call() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    h = Harness(Graph(batch_faults=[refuse]), send_max_attempts=1)
    results = await h.send_piled_up(["first", "a", "b"])
    assert [r.error_label for r in results[1:]] == ["network", "network"]
    assert all(r.transient for r in results[1:])


async def test_a_part_that_timed_out_is_risky_and_not_retried() -> None:
    class OneNullPart(Graph):
        async def __call__(self, request: httpx.Request) -> httpx.Response:
            response = await super().__call__(request)
            if b'"batch"' in request.content and not getattr(self, "done", False):
                self.done = True
                parts = json.loads(response.content)
                parts[0] = None
                return httpx.Response(200, json=parts)
            return response

    graph = OneNullPart()
    h = Harness(graph)
    first, late, fine = await h.send_piled_up(["first", "late", "fine"])
    assert first.ok and fine.ok
    assert (late.ok, late.error_class, late.attempts) == (False, ErrorClass.RISKY, 1)
    assert graph.singles == ["first"] and len(graph.batches) == 1
    assert h.sample("bot_send_api_retries_total", error_code="timeout") == 0
    assert (
        h.sample("bot_send_api_requests_total", outcome="uncertain_error", error_code="timeout")
        == 1
    )


@pytest.mark.parametrize(
    ("fault", "label"),
    [
        (raising(httpx.ReadTimeout), "timeout"),
        (raising(httpx.RemoteProtocolError), "reset"),
        (lambda r: httpx.Response(200, text="<html>gateway</html>"), "malformed"),
    ],
    ids=["read_timeout", "reset", "malformed_2xx"],
)
async def test_a_batch_whose_answer_was_lost_is_risky_for_every_call_and_not_resent(
    fault: Fault, label: str
) -> None:
    graph = Graph(batch_faults=[fault])
    h = Harness(graph, send_max_attempts=4)
    results = await h.send_piled_up(["first", "a", "b", "c"])
    assert results[0].ok
    assert [(r.error_class, r.error_label, r.attempts) for r in results[1:]] == [
        (ErrorClass.RISKY, label, 1)
    ] * 3
    assert len(graph.requests) == 2 and h.sleeps == []  # the batch was never sent again
    assert h.sample("bot_send_api_requests_total", outcome="uncertain_error", error_code=label) == 3


async def test_a_batch_gets_more_time_to_answer_the_more_calls_it_carries() -> None:
    budgets: list[tuple[int, float]] = []

    class Timed(Graph):
        async def __call__(self, request: httpx.Request) -> httpx.Response:
            calls = len(json.loads(request.content).get("batch", [None]))
            budgets.append((calls, request.extensions["timeout"]["read"]))
            return await super().__call__(request)

    h = Harness(Timed(), send_timeout_seconds=2.0, send_batch_call_timeout_seconds=0.25)
    results = await h.send_piled_up([str(i) for i in range(5)])
    assert all(r.ok for r in results)
    assert budgets == [(1, 2.0), (4, 2.0 + 4 * 0.25)]


async def test_unencodable_replies_fail_alone_and_never_touch_their_batch() -> None:
    psids = [f"u{i}" for i in range(40)]
    bad = set(psids[3::4])  # 10 of 40, spread through the batch window
    texts = {p: f"{p} \ud83d" for p in bad}  # a lone surrogate: a truncated emoji
    h = Harness(Graph())
    results = await h.send_piled_up(psids, texts, queued=len(psids) - 1 - len(bad))
    by_psid = dict(zip(psids, results, strict=True))
    assert all(by_psid[p].ok and by_psid[p].attempts == 1 for p in psids if p not in bad)
    assert {(r.error_class, r.error_label, r.attempts) for p, r in by_psid.items() if p in bad} == {
        (ErrorClass.PERMANENT, "unencodable", 0)
    }
    sent = [i["recipient"]["id"] for b in h.graph.batches for i in b] + h.graph.singles
    assert sorted(sent) == sorted(p for p in psids if p not in bad)
    assert h.sample("bot_send_api_requests_total", outcome="success", error_code="none") == 30
    assert (
        h.sample("bot_send_api_requests_total", outcome="permanent_error", error_code="unencodable")
        == 10
    )


async def test_sender_actions_personas_and_metadata_ride_in_a_batch() -> None:
    graph = Graph()
    h = Harness(graph)
    gate = graph.gate = asyncio.Event()
    first = asyncio.create_task(h.api.send(PAGE, "first", {"text": "x"}))
    await eventually(lambda: bool(graph.requests))
    metadata = '{"k":"evt-9:1","app":"a & b"}'
    rest = [
        asyncio.create_task(h.api.send(PAGE, "typing", {}, sender_action="typing_on")),
        asyncio.create_task(
            h.api.send(PAGE, "said", {"text": "hi", "metadata": metadata}, persona_id="777")
        ),
    ]
    await eventually(lambda: h.api.queued >= 2)
    gate.set()
    assert all(r.ok for r in await asyncio.gather(first, *rest))
    await h.api.aclose()
    assert graph.batches == [
        [
            {
                "url": f"{PAGE}/messages",
                "recipient": {"id": "typing"},
                "sender_action": "typing_on",
            },
            {
                "url": f"{PAGE}/messages",
                "recipient": {"id": "said"},
                "messaging_type": "RESPONSE",
                "message": {"text": "hi", "metadata": metadata},
                "persona_id": "777",
            },
        ]
    ]


async def test_batches_hold_one_token_each() -> None:
    graph = Graph()
    h = Harness(graph, page_tokens="222=tok_other")
    gate = graph.gate = asyncio.Event()
    first = asyncio.create_task(h.api.send(PAGE, "first", {"text": "x"}))
    await eventually(lambda: bool(graph.requests))
    pages = [PAGE, "222", PAGE, "222"]
    rest = [asyncio.create_task(h.api.send(p, f"u{i}", {"text": "x"})) for i, p in enumerate(pages)]
    await eventually(lambda: h.api.queued >= 4)
    gate.set()
    assert all(r.ok for r in await asyncio.gather(first, *rest))
    await h.api.aclose()
    batches = [json.loads(r.content) for r in graph.requests[1:]]
    assert [(b["access_token"], len(b["batch"])) for b in batches] == [
        (TOKEN, 2),
        ("tok_other", 2),
    ]
    assert [i["relative_url"] for i in batches[1]["batch"]] == ["222/messages"] * 2


def _echo(request: httpx.Request) -> httpx.Response:
    # A hostile or buggy Graph quoting the whole request (with our credentials) back.
    return httpx.Response(400, text=request.content.decode())


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"refused {request.content.decode()}", request=request)


@pytest.mark.parametrize("fault", [_echo, _refuse], ids=["echoed", "in_exception"])
async def test_token_and_proof_never_reach_batch_urls_logs_or_results(
    fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    graph = Graph(batch_faults=[fault])
    h = Harness(graph, appsecret_proof=True, send_max_attempts=1)
    caplog.set_level(logging.DEBUG, logger="bot.send_api")
    results = await h.send_piled_up(["first", "a", "b"])
    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    # "Require App Secret" checks the batch and each call in it: the proof goes on both.
    assert json.loads(graph.requests[1].content)["appsecret_proof"] == proof
    assert [i["appsecret_proof"] for i in graph.batches[0]] == [proof, proof]
    assert all(TOKEN not in str(r.url) for r in graph.requests)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "[REDACTED]" in logged
    assert TOKEN not in logged and proof not in logged
    assert not any(r.ok for r in results[1:])
    assert all(TOKEN not in repr(r) for r in results)
    spans = h.exporter.get_finished_spans()
    recorded = str([(s.attributes, [e.attributes for e in s.events]) for s in spans])
    assert spans and TOKEN not in recorded and proof not in recorded


async def test_the_batch_span_runs_in_the_leaders_trace_and_links_the_other_calls() -> None:
    graph = Graph()
    h = Harness(graph)
    tracer = h.provider.get_tracer("test")
    parents: dict[str, int] = {}

    async def send_in_span(psid: str) -> SendResult:
        with tracer.start_as_current_span(f"process {psid}") as span:
            parents[psid] = span.get_span_context().span_id
            return await h.api.send(PAGE, psid, {"text": psid})

    gate = graph.gate = asyncio.Event()
    first = asyncio.create_task(send_in_span("first"))
    await eventually(lambda: bool(graph.requests))
    rest = [asyncio.create_task(send_in_span(p)) for p in ("a", "b", "c")]
    await eventually(lambda: h.api.queued >= 3)
    gate.set()
    assert all(r.ok for r in await asyncio.gather(first, *rest))
    await h.api.aclose()
    batch = next(s for s in h.exporter.get_finished_spans() if s.name == "send_api batch")
    assert (batch.attributes or {})["bot.send_api.batch_size"] == 3
    assert batch.parent is not None and batch.parent.span_id == parents["a"]
    assert sorted(link.context.span_id for link in batch.links) == sorted(
        [parents["b"], parents["c"]]
    )
    assert all("traceparent" in r.headers for r in graph.requests)
