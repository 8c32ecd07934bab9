"""The bot's HTTP edge in-process: handshake, validation, storage, metrics and spans."""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from bot import __version__
from bot.app import create_app
from bot.inbox import Inbox, InboxError, InboxRecord, StoredEvent
from bot.inbox_sqlite import SqliteInbox
from bot.signature import signature_for
from bot.testing import (
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    PSID,
    VERIFY_TOKEN,
    RecordingSendApi,
    make_settings,
)

# Reference §2.4 body A: exactly the bytes Meta signs (\uXXXX and \/ escapes).
META_ESCAPED_BODY = (
    b'{"object":"page","entry":[{"id":"111","time":1700000000000,"messaging":[{"sender":'
    b'{"id":"222"},"recipient":{"id":"111"},"timestamp":1700000000000,"message":{"mid":"m_1",'
    b'"text":"\\u00e4\\u00f6\\u00e5 https:\\/\\/x.io"}}]}]}'
)


class BrokenInbox(SqliteInbox):
    """Opens fine, then cannot store or answer a ping (a full or failing disk)."""

    async def enqueue(self, records: Any) -> list[StoredEvent | None]:
        raise InboxError("disk I/O error")

    async def ping(self) -> None:
        raise InboxError("disk I/O error")


def text_event(
    mid: str, text: str = "hi", *, sender: str = PSID, timestamp: int = 1_700_000_000_000
) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": PAGE_ID},
        "timestamp": timestamp,
        "message": {"mid": mid, "text": text},
    }


def envelope(*events: dict[str, Any]) -> bytes:
    entries = [{"id": PAGE_ID, "time": 1_700_000_000_000, "messaging": [e]} for e in events]
    return json.dumps({"object": "page", "entry": entries}).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": signature_for(body, secret), "Content-Type": "application/json"}


class Bot:
    """One app under test with its client, registry, spans and inbox file."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        registry: CollectorRegistry,
        spans: InMemorySpanExporter,
        db: Path,
        send_api: RecordingSendApi,
    ) -> None:
        self.client, self.registry, self.spans, self.db = client, registry, spans, db
        self.send_api = send_api

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def stored(self) -> list[tuple[str, str, str | None]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(
                "SELECT dedup_key, kind, traceparent FROM events ORDER BY id"
            ).fetchall()

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(
            "/webhook", content=body, headers=signed(body) if headers is None else headers
        )


BotFactory = Callable[..., Any]


@pytest.fixture
def make_bot(tmp_path: Path) -> BotFactory:
    @asynccontextmanager
    async def factory(
        *, inbox: Inbox | None = None, sampler: Any = None, **overrides: Any
    ) -> AsyncIterator[Bot]:
        db = tmp_path / "inbox.db"
        settings = make_settings(INBOX_PATH=str(db), **overrides)
        registry = CollectorRegistry()
        spans = InMemorySpanExporter()
        provider = TracerProvider(sampler=sampler)
        provider.add_span_processor(SimpleSpanProcessor(spans))
        send_api = RecordingSendApi()
        app = create_app(
            settings,
            inbox=inbox,
            send_api=send_api,
            registry=registry,
            tracer_provider=provider,
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bot.test") as client:
                yield Bot(client, registry, spans, db, send_api)

    return factory


# --- GET /webhook: the handshake ------------------------------------------------------------


async def test_handshake_echoes_the_challenge_as_plain_text(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        }
        response = await bot.client.get("/webhook", params=params)
        assert response.status_code == 200
        assert response.text == "1158201444"
        assert response.headers["content-type"].startswith("text/plain")
        assert bot.metric("bot_webhook_verifications_total", result="success") == 1


@pytest.mark.parametrize(
    ("params", "result"),
    [
        (
            {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
            "token_mismatch",
        ),
        (
            {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
            "bad_mode",
        ),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "missing_params"),
        ({}, "missing_params"),
    ],
)
async def test_handshake_refuses_with_403_and_counts_why(
    make_bot: BotFactory, params: dict[str, str], result: str
) -> None:
    async with make_bot() as bot:
        response = await bot.client.get("/webhook", params=params)
        assert response.status_code == 403
        assert response.json()["error"]
        assert bot.metric("bot_webhook_verifications_total", result=result) == 1
        assert bot.metric("bot_webhook_verifications_total", result="success") == 0


# --- POST /webhook: rejections --------------------------------------------------------------


async def test_body_over_the_cap_is_413_before_the_signature(make_bot: BotFactory) -> None:
    async with make_bot(WEBHOOK_MAX_BODY_BYTES=1024) as bot:
        body = envelope(text_event("m_big", "x" * 2000))
        response = await bot.post(body)
        assert response.status_code == 413
        assert response.json() == {"error": "body too large"}
        assert bot.metric("bot_webhook_requests_rejected_total", reason="too_large") == 1
        assert bot.stored() == []


async def test_streamed_body_without_length_is_cut_off_at_the_cap(make_bot: BotFactory) -> None:
    async with make_bot(WEBHOOK_MAX_BODY_BYTES=1024) as bot:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 512

        response = await bot.client.post("/webhook", content=chunks())
        assert response.status_code == 413
        assert bot.metric("bot_webhook_requests_rejected_total", reason="too_large") == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-Hub-Signature-256": "sha1=eb935a8cb91fd3b72ab4cd92acd4498e6e688bb0"}, "malformed"),
        ({"X-Hub-Signature-256": signature_for(b"other body", APP_SECRET)}, "mismatch"),
    ],
)
async def test_bad_signature_is_401_with_its_reason(
    make_bot: BotFactory, headers: dict[str, str], reason: str
) -> None:
    async with make_bot() as bot:
        response = await bot.post(envelope(text_event("m_1")), headers)
        assert response.status_code == 401
        assert response.json() == {"error": reason}
        assert bot.metric("bot_webhook_signature_failures_total", reason=reason) == 1
        assert bot.stored() == []


async def test_previous_secret_is_accepted_during_rotation(make_bot: BotFactory) -> None:
    async with make_bot(MESSENGER_APP_SECRET_PREVIOUS="old_secret") as bot:
        body = envelope(text_event("m_1"))
        assert (await bot.post(body, signed(body, "old_secret"))).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"object":"page","entry":[],"x":NaN}', 400, "invalid_json"),
        (b'{"object":"page","entry":[],"x":"\xff\xfe"}', 400, "invalid_json"),
        (b"[1, 2]", 400, "bad_shape"),
        (b'{"object":"page","entry":{}}', 400, "bad_shape"),
        (
            b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"\\ud800"}}]}]}',
            400,
            "bad_shape",
        ),
        (b'{"object":"instagram","entry":[]}', 404, "wrong_object"),
    ],
)
async def test_signed_but_unusable_body_is_rejected(
    make_bot: BotFactory, body: bytes, status: int, reason: str
) -> None:
    async with make_bot() as bot:
        response = await bot.post(body)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]
        assert bot.metric("bot_webhook_requests_rejected_total", reason=reason) == 1


# --- POST /webhook: accepted events ---------------------------------------------------------


async def test_meta_escaped_body_verifies_and_is_stored(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        response = await bot.post(META_ESCAPED_BODY)
        assert response.status_code == 200
        assert response.text == "EVENT_RECEIVED"
        assert response.headers["content-type"].startswith("text/plain")
        [(dedup_key, kind, _)] = bot.stored()
        assert (dedup_key, kind) == ("mid:m_1", "text")


async def test_every_event_of_a_batch_is_stored_and_counted(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        postback = {
            "sender": {"id": PSID},
            "recipient": {"id": PAGE_ID},
            "timestamp": 1_700_000_000_001,
            "postback": {"mid": "m_pb", "payload": "GET_STARTED", "title": "Start"},
        }
        response = await bot.post(envelope(text_event("m_1"), text_event("m_2"), postback))
        assert response.status_code == 200
        assert [row[:2] for row in bot.stored()] == [
            ("mid:m_1", "text"),
            ("mid:m_2", "text"),
            ("postback:m_pb", "postback"),
        ]
        assert bot.metric("bot_webhook_events_received_total", event_type="text") == 2
        assert bot.metric("bot_webhook_events_received_total", event_type="postback") == 1


async def test_redelivered_event_is_acknowledged_but_stored_once(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        body = envelope(text_event("m_dup"))
        assert (await bot.post(body)).status_code == 200
        assert (await bot.post(body)).status_code == 200
        assert len(bot.stored()) == 1
        assert bot.metric("bot_webhook_events_received_total", event_type="text") == 1
        assert bot.metric("bot_events_duplicate_total", event_type="text") == 1


async def test_empty_entry_list_is_acknowledged(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        response = await bot.post(b'{"object":"page","entry":[]}')
        assert (response.status_code, response.text) == (200, "EVENT_RECEIVED")


async def test_inbox_failure_is_503_so_meta_retries(make_bot: BotFactory, tmp_path: Path) -> None:
    async with make_bot(inbox=BrokenInbox(tmp_path / "broken.db")) as bot:
        response = await bot.post(envelope(text_event("m_1")))
        assert response.status_code == 503
        assert response.json() == {"error": "inbox unavailable"}
        ready = await bot.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "inbox unavailable"


async def test_server_span_parents_one_producer_span_per_event_whose_context_is_stored(
    make_bot: BotFactory,
) -> None:
    async with make_bot() as bot:
        assert (await bot.post(envelope(text_event("m_1"), text_event("m_2")))).status_code == 200
        finished = bot.spans.get_finished_spans()
        [server] = [s for s in finished if s.kind is SpanKind.SERVER]
        producers = [s for s in finished if s.kind is SpanKind.PRODUCER]
        assert server.name == "POST /webhook"
        assert server.attributes is not None and server.attributes["http.route"] == "/webhook"
        assert [p.name for p in producers] == ["send bot.inbound"] * 2
        assert server.context is not None
        for producer in producers:
            assert producer.parent is not None and producer.parent.span_id == server.context.span_id
        stored = {row[2] for row in bot.stored()}
        expected = {
            f"00-{p.context.trace_id:032x}-{p.context.span_id:016x}-{int(p.context.trace_flags):02x}"
            for p in producers
            if p.context
        }
        assert stored == expected


# --- probes and /metrics --------------------------------------------------------------------


async def test_health_and_readiness(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        assert (await bot.client.get("/healthz")).status_code == 200
        ready = await bot.client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")


async def test_metrics_negotiate_openmetrics_with_exemplars(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        assert (await bot.post(envelope(text_event("m_1")))).status_code == 200
        plain = await bot.client.get("/metrics")
        assert plain.headers["content-type"].startswith("text/plain")
        assert "# {trace_id=" not in plain.text
        om = await bot.client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert "# {trace_id=" in om.text
        assert om.text.rstrip().endswith("# EOF")


async def test_scrape_refreshes_inbox_gauges(make_bot: BotFactory, tmp_path: Path) -> None:
    inbox = SqliteInbox(tmp_path / "seeded.db")
    await inbox.open()
    record = InboxRecord(PAGE_ID, PSID, "text", 1, "mid:dead", "{}", None, 1.0)
    [stored] = await inbox.enqueue([record])
    assert stored is not None
    await inbox.dead_letter(stored.id, "handler crashed")
    try:
        async with make_bot(inbox=inbox) as bot:
            await bot.client.get("/metrics")
            assert bot.metric("bot_dead_letter_events") == 1
            assert bot.metric("bot_inbox_pending_events") == 0
    finally:
        await inbox.close()


async def test_http_metrics_use_route_templates_and_bounded_labels(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        await bot.post(envelope(text_event("m_1")))
        await bot.client.get("/no/such/path/6543210987654321")
        await bot.client.request("BREW", "/webhook")
        count = "http_server_request_duration_seconds_count"
        labels = {
            "http_request_method": "POST",
            "http_route": "/webhook",
            "http_response_status_code": "200",
        }
        assert bot.metric(count, **labels) == 1
        unmatched = {
            "http_request_method": "GET",
            "http_route": "_unmatched",
            "http_response_status_code": "404",
        }
        assert bot.metric(count, **unmatched) == 1
        other = {
            "http_request_method": "_OTHER",
            "http_route": "/webhook",
            "http_response_status_code": "405",
        }
        assert bot.metric(count, **other) == 1
        for family in bot.registry.collect():
            for sample in family.samples:
                assert not any(
                    PSID in value or "/no/such" in value for value in sample.labels.values()
                )


# --- secrets --------------------------------------------------------------------------------


async def test_no_secret_reaches_logs_or_spans(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_bot() as bot:
        body = envelope(text_event("m_1"))
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "7"}
        await bot.client.get("/webhook", params=params)
        await bot.client.get("/webhook", params={**params, "hub.verify_token": "guess"})
        await bot.post(body)
        await bot.post(body, {"X-Hub-Signature-256": signature_for(body, "attacker")})
        spans = bot.spans.get_finished_spans()
    signature = signature_for(body, APP_SECRET).removeprefix("sha256=")
    secrets = (APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN, signature)
    texts = [json.dumps(dict(span.attributes or {})) + span.name for span in spans]
    # The test's own httpx client logs its request URLs; only the bot's records matter here.
    records = [r for r in caplog.records if not r.name.startswith("httpx")]
    texts += [r.getMessage() + json.dumps(vars(r), default=str) for r in records]
    assert any(r.__dict__.get("log_type") == "handshake" for r in caplog.records)
    assert any(r.__dict__.get("log_type") == "event" for r in caplog.records)
    for text in texts:
        for secret in secrets:
            assert secret not in text


async def test_inbound_traceparent_continues_the_callers_trace(make_bot: BotFactory) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with make_bot() as bot:
        body = envelope(text_event("m_1"))
        headers = {**signed(body), "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}
        assert (await bot.post(body, headers)).status_code == 200
        [server] = [s for s in bot.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
        assert server.context is not None and f"{server.context.trace_id:032x}" == caller_trace
        assert server.parent is not None and server.parent.span_id == 0x00F067AA0BA902B7


async def test_without_recorded_spans_events_still_carry_the_requests_trace_context(
    make_bot: BotFactory,
) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with make_bot(sampler=ALWAYS_OFF) as bot:
        body = envelope(text_event("m_1"), text_event("m_2"))
        headers = {**signed(body), "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-00"}
        assert (await bot.post(body, headers)).status_code == 200
        assert (await bot.post(envelope(text_event("m_3")))).status_code == 200
        assert bot.spans.get_finished_spans() == ()
        first, second, third = (row[2] for row in bot.stored())
        assert first == second and first is not None  # one request, one context
        assert first.split("-")[1] == caller_trace and first.endswith("-00")
        assert third is not None and third.split("-")[1] not in ("0" * 32, caller_trace)
        duration = "http_server_request_duration_seconds_count"
        labels = {"http_request_method": "POST", "http_route": "/webhook"}
        assert bot.metric(duration, **labels, http_response_status_code="200") == 2


async def test_a_bug_in_the_edge_is_a_500_with_a_json_reason_and_an_error_span(
    make_bot: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(body: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr("bot.webhook.parse_envelope", explode)
    async with make_bot() as bot:
        response = await bot.post(envelope(text_event("m_1")))
        assert (response.status_code, response.json()) == (500, {"error": "internal error"})
        [server] = [s for s in bot.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
        assert server.status.status_code is StatusCode.ERROR
        assert [e.name for e in server.events] == ["exception"]
        duration = "http_server_request_duration_seconds_count"
        labels = {"http_request_method": "POST", "http_route": "/webhook"}
        assert bot.metric(duration, **labels, http_response_status_code="500") == 1


async def test_acknowledged_event_gets_a_reply_from_the_workers(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        now_ms = int(time.time() * 1000)  # inside the 24-hour window
        assert (
            await bot.post(envelope(text_event("m_1", "hello", timestamp=now_ms)))
        ).status_code == 200
        [call] = await bot.send_api.wait_for(1, within=5.0)
        assert (call.page_id, call.psid) == (PAGE_ID, PSID)
        assert "hello" in call.message["text"]


async def test_processing_metrics_move_when_an_event_is_handled(make_bot: BotFactory) -> None:
    started = time.time()
    async with make_bot() as bot:
        assert (
            bot.metric(
                "bot_build_info", version=__version__, python_version=platform.python_version()
            )
            == 1
        )
        before_busy = bot.metric("bot_workers_busy")
        now_ms = int(time.time() * 1000)
        response = await bot.post(envelope(text_event("m_7", "hi", timestamp=now_ms)))
        assert response.status_code == 200
        await bot.send_api.wait_for(1, within=5.0)
        async with asyncio.timeout(5.0):
            handled = {"event_type": "text", "outcome": "handled"}
            while not bot.metric("bot_events_processed_total", **handled):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # poll with a deadline: the count follows the send

        assert bot.metric("bot_inbox_commit_batch_events_count") >= 1
        assert bot.metric("bot_inbox_commit_batch_events_sum") >= 1
        assert bot.metric("bot_handler_duration_seconds_count", event_type="text") == 1
        assert bot.metric("bot_inbox_wait_seconds_count") == 1
        assert bot.metric("bot_last_processed_timestamp_seconds") >= started
        assert bot.metric("bot_workers_busy") == before_busy == 0
        assert bot.metric("http_server_active_requests", http_request_method="POST") == 0
        await bot.client.get("/metrics")
        assert bot.metric("bot_inbox_oldest_pending_age_seconds") == 0


async def test_oldest_pending_age_shows_how_long_events_wait(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    inbox = SqliteInbox(tmp_path / "held.db", synchronous="NORMAL")
    await inbox.open()
    try:
        received = time.time() - 30
        record = InboxRecord(PAGE_ID, PSID, "text", 1, "mid:m_old", "{}", None, received)
        await inbox.enqueue([record])
        # A ten-minute ordering hold keeps the event pending while the gauges are read.
        async with make_bot(inbox=inbox, ORDERING_WINDOW_MS=600_000) as bot:
            await bot.client.get("/metrics")
            assert bot.metric("bot_inbox_pending_events") == 1
            assert bot.metric("bot_inbox_oldest_pending_age_seconds") >= 30
    finally:
        await inbox.close()


# --- event time and batch size (issue 9 "Time", issue 7 point 7) ------------------------------


def stored_timestamps(bot: Bot) -> list[int]:
    with sqlite3.connect(bot.db) as conn:
        return [row[0] for row in conn.execute("SELECT timestamp_ms FROM events ORDER BY id")]


async def test_a_seconds_timestamp_gets_its_reply(make_bot: BotFactory) -> None:
    # Read as milliseconds, a seconds value is 1970: outside the window, so no reply was sent.
    async with make_bot() as bot:
        now_s = int(time.time())
        response = await bot.post(envelope(text_event("m_s", "in seconds", timestamp=now_s)))
        assert response.status_code == 200
        await bot.send_api.wait_for(1, within=5.0)
        assert stored_timestamps(bot) == [now_s * 1000]
        assert bot.metric("bot_event_timestamps_adjusted_total", reason="seconds") == 1


async def test_a_timestamp_years_ahead_is_clamped_to_arrival(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        before_ms = int(time.time() * 1000)
        ten_years_ms = before_ms + 10 * 365 * 86_400_000
        response = await bot.post(envelope(text_event("m_f", timestamp=ten_years_ms)))
        assert response.status_code == 200
        [stored] = stored_timestamps(bot)
        assert before_ms <= stored <= int(time.time() * 1000)
        assert bot.metric("bot_event_timestamps_adjusted_total", reason="future") == 1


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [(None, "missing"), (0, "missing"), ("1700000000000", "invalid")],
    ids=["absent", "zero", "string"],
)
async def test_an_unusable_timestamp_falls_back_to_arrival_and_is_answered_and_logged(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture, timestamp: Any, reason: str
) -> None:
    event = text_event("m_u", "when?")
    if timestamp is None:
        del event["timestamp"]
    else:
        event["timestamp"] = timestamp
    caplog.set_level(logging.INFO, logger="bot.webhook")
    async with make_bot() as bot:
        assert (await bot.post(envelope(event))).status_code == 200
        await bot.send_api.wait_for(1, within=5.0)
        assert bot.metric("bot_event_timestamps_adjusted_total", reason=reason) == 1
    [record] = [r for r in caplog.records if getattr(r, "reason", None) == reason]
    assert record.event_type == "text"  # type: ignore[attr-defined]
    assert "when?" not in record.getMessage()


async def test_more_events_than_meta_batches_is_413_and_nothing_is_stored(
    make_bot: BotFactory,
) -> None:
    async with make_bot() as bot:
        events = [text_event(f"m_{n}") for n in range(1001)]
        response = await bot.post(envelope(*events))
        assert response.status_code == 413
        assert response.json() == {"error": "more than 1000 events in one POST"}
        assert bot.stored() == []
        assert bot.metric("bot_webhook_requests_rejected_total", reason="too_many_events") == 1
        assert (await bot.post(envelope(*events[:1000]))).status_code == 200


# --- the inbox file on disk (issue 9 "Inbox integrity") -------------------------------------


def remove_inbox_files(db: Path) -> None:
    for path in db.parent.glob(db.name + "*"):  # the database, its -wal and -shm
        path.unlink()


@pytest.mark.parametrize("loss", ["deleted", "replaced"])
async def test_a_lost_inbox_file_stops_acks_fails_readiness_and_is_logged_once(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path, loss: str
) -> None:
    async with make_bot() as bot:
        assert (await bot.post(envelope(text_event("m_before")))).status_code == 200
        if loss == "deleted":
            remove_inbox_files(bot.db)
        else:
            (tmp_path / "other.db").write_bytes(b"")
            (tmp_path / "other.db").replace(bot.db)

        for n in range(3):
            response = await bot.post(envelope(text_event(f"m_after_{n}")))
            assert response.status_code == 503
            assert response.json() == {"error": "inbox file lost"}
        ready = await bot.client.get("/readyz")
        assert ready.status_code == 503
        # A deleted file may be recreated empty by a new SQLite connection: then it reads
        # as replaced, which is just as lost.
        reasons = {"inbox file replaced"} | ({"inbox file deleted"} if loss == "deleted" else set())
        assert ready.json()["reason"] in reasons
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert ready.json()["reason"] in critical[0].getMessage()
