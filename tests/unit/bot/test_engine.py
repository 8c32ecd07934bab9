"""The engine over a MemoryInbox and a recording SendApi: ordering, dedup, windows, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry

from bot.engine import Engine
from bot.events import parse_event
from bot.inbox import (
    DeadLetterKind,
    Inbox,
    InboxError,
    InboxRecord,
    NewReply,
    ReplyState,
    ReplyUpdate,
    StoredEvent,
)
from bot.inbox_memory import MemoryInbox
from bot.inbox_sqlite import SqliteInbox
from bot.metrics import BotMetrics
from bot.outbox_codec import encode_reply, handler_metadata, key_from_metadata
from bot.retry import ErrorClass
from bot.routing import Context, Reply, Router
from bot.send_api import HttpSendApi, SendResult
from bot.settings import BotSettings
from bot.testing import RecordingSendApi, SentCall
from bot.worker_limit import DEMAND_SAMPLE_TICKS
from tests.polling import eventually

PAGE = "104501234567890"
ALICE, BOB = "1000000000000001", "1000000000000002"
DEADLINE = 5.0


def settings(**overrides: Any) -> BotSettings:
    values: dict[str, Any] = {
        "verify_token": "verify",
        "app_secret": "secret",
        "page_access_token": "tok_page",
        "page_id": PAGE,
        "graph_api_base": "http://graph.test",
        "ordering_window_ms": 0,
        "handler_max_attempts": 3,
        "handler_backoff_base_seconds": 0.001,
        "worker_concurrency": 8,
        **overrides,
    }
    return BotSettings(**values)


def now_ms() -> int:
    return int(time.time() * 1000)


def record(
    psid: str,
    ts: int | None = None,
    *,
    mid: str | None = None,
    text: str | None = None,
    traceparent: str | None = None,
    **fields: Any,
) -> InboxRecord:
    """A stored-to-be event; a text message ``t<ts>`` unless other ``fields`` are given."""
    ts = now_ms() if ts is None else ts
    message = {"mid": mid or f"m_{psid}_{ts}", "text": text or f"t{ts}"}
    item: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": ts}
    item.update(fields or {"message": message})
    event = parse_event(item, page_id=PAGE)
    return InboxRecord(
        page_id=PAGE,
        sender_key=event.user_id or "",
        kind=event.kind.value,
        timestamp_ms=ts,
        dedup_key=event.dedup_key,
        payload=json.dumps(item),
        traceparent=traceparent,
        received_at=time.time(),
    )


def new_reply(n: int, text: str, psid: str = ALICE) -> NewReply:
    return NewReply(n=n, page_id=PAGE, psid=psid, body=encode_reply(Reply.text(text)))


def echo_router() -> Router:
    router = Router()
    router.on_text(lambda ctx: Reply.text(f"You said: {ctx.text}"))
    return router


class Harness:
    def __init__(
        self,
        router: Router | None = None,
        send_api: Any = None,
        *,
        inbox: Inbox | None = None,
        **overrides: Any,
    ):
        self.registry = CollectorRegistry()
        self.metrics = BotMetrics(self.registry)
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.inbox: Any = inbox if inbox is not None else MemoryInbox()
        self.settings = settings(**overrides)
        self.router = router or echo_router()
        self.send_api = send_api or RecordingSendApi()
        self.pool = self.new_pool()

    def new_pool(self) -> Engine:
        return Engine(
            settings=self.settings,
            inbox=self.inbox,
            router=self.router,
            send_api=self.send_api,
            metrics=self.metrics,
            tracer=self.provider.get_tracer("test"),
            replay_poll_seconds=0.01,
        )

    async def enqueue(self, *records: InboxRecord) -> list[StoredEvent | None]:
        return await self.inbox.enqueue(records)

    async def deliver(self, *records: InboxRecord) -> list[StoredEvent | None]:
        """What the HTTP edge does: durable enqueue, then submit."""
        stored = await self.enqueue(*records)
        self.pool.submit(stored)
        return stored

    async def settle(self) -> None:
        await asyncio.wait_for(self.pool.join(), DEADLINE)

    def texts(self, psid: str | None = None) -> list[str]:
        return [call.text or "" for call in self.send_api.sent if psid in (None, call.psid)]

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    await harness.pool.start()
    yield harness
    await harness.pool.stop(grace=1)


async def wait_for(condition: Callable[[], bool]) -> None:
    await eventually(condition, within=DEADLINE, interval=0.005)


async def test_text_gets_a_reply_and_the_event_is_done(h: Harness) -> None:
    ts = now_ms()
    await h.deliver(record(ALICE, ts))
    await h.settle()
    [sent] = h.send_api.sent
    assert (sent.psid, sent.text, sent.messaging_type) == (ALICE, f"You said: t{ts}", "RESPONSE")
    assert await h.inbox.pending() == []
    assert h.sample("bot_events_processed_total", event_type="text", outcome="handled") == 1
    assert h.sample("bot_time_to_first_reply_seconds_count") == 1
    assert h.sample("bot_inbox_wait_seconds_count") == 1
    assert await h.inbox.window_opened_at(PAGE, ALICE) == ts


async def test_same_sender_is_processed_in_timestamp_order_when_submitted_out_of_order() -> None:
    h = Harness(ordering_window_ms=300)
    await h.pool.start()
    base = now_ms()
    # The later message arrives first; the earlier one shows up within the ordering window.
    await h.deliver(record(ALICE, base + 2))
    await asyncio.sleep(0)
    await h.deliver(record(ALICE, base + 1), record(BOB, base))
    await h.deliver(record(ALICE, base + 3))
    await h.settle()
    await h.pool.stop(grace=1)
    assert h.texts(ALICE) == [f"You said: t{base + n}" for n in (1, 2, 3)]
    assert h.texts(BOB) == [f"You said: t{base}"]


async def test_different_senders_run_in_parallel() -> None:
    inside: set[str] = set()
    both_inside = asyncio.Event()
    router = Router()

    @router.on_text
    async def rendezvous(ctx: Context) -> Reply:
        assert ctx.psid is not None
        inside.add(ctx.psid)
        if len(inside) == 2:
            both_inside.set()
        await asyncio.wait_for(both_inside.wait(), DEADLINE)  # deadlocks if run one by one
        return Reply.text("ok")

    h = Harness(router)
    await h.pool.start()
    await h.deliver(record(ALICE), record(BOB))
    await h.settle()
    await h.pool.stop(grace=1)
    assert sorted(h.texts()) == ["ok", "ok"]


async def test_one_sender_runs_one_event_at_a_time() -> None:
    running, peak = 0, 0
    router = Router()

    @router.on_text
    async def count(ctx: Context) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)  # let the loop try to start the sender's next event
        running -= 1

    h = Harness(router)
    await h.pool.start()
    base = now_ms()
    await h.deliver(*(record(ALICE, base + n) for n in range(5)))
    await h.settle()
    await h.pool.stop(grace=1)
    assert peak == 1
    assert h.sample("bot_events_processed_total", event_type="text", outcome="handled") == 5


async def test_a_duplicate_never_gets_a_second_reply(h: Harness) -> None:
    first = record(ALICE, mid="m_dup")
    stored = await h.deliver(first, first)
    assert stored[1] is None
    h.pool.submit([stored[0]])  # the same stored event handed over twice
    await h.deliver(first)
    await h.settle()
    h.pool.submit([stored[0]])  # and again after it finished
    await h.settle()
    assert len(h.send_api.sent) == 1


async def test_echo_gets_no_reply_and_is_counted() -> None:
    router = echo_router()
    router.on_echo(lambda ctx: Reply.text("this would loop"))
    h = Harness(router)
    await h.pool.start()
    echo: dict[str, Any] = {
        "sender": {"id": PAGE},
        "recipient": {"id": ALICE},
        "message": {"mid": "m_echo", "is_echo": True, "text": "from the page"},
    }
    await h.deliver(record(ALICE, **echo))
    await h.settle()
    await h.pool.stop(grace=1)
    assert h.send_api.sent == []
    assert h.sample("bot_echoes_ignored_total") == 1


async def test_reply_outside_the_window_is_not_attempted_and_is_counted(h: Harness) -> None:
    day_ago = now_ms() - 25 * 3600 * 1000  # a message delivered very late
    await h.deliver(record(ALICE, day_ago))
    await h.settle()
    assert h.send_api.sent == []
    assert h.sample("bot_replies_dropped_total", reason="outside_window") == 1
    assert await h.inbox.pending() == []


async def test_window_stored_in_the_inbox_allows_a_reply_to_a_non_opening_event() -> None:
    router = Router()
    router.on_read(lambda ctx: Reply.text("thanks for reading"))
    h = Harness(router)
    await h.inbox.touch_window(PAGE, ALICE, now_ms() - 3600 * 1000)  # written by an earlier run
    await h.pool.start()
    await h.deliver(record(ALICE, read={"watermark": now_ms()}), record(BOB, read={"watermark": 1}))
    await h.settle()
    await h.pool.stop(grace=1)
    assert h.texts() == ["thanks for reading"]
    assert h.send_api.sent[0].psid == ALICE
    assert h.sample("bot_replies_dropped_total", reason="outside_window") == 1


async def test_failing_handler_is_retried_then_dead_lettered_while_others_proceed() -> None:
    release = asyncio.Event()
    calls = 0
    router = echo_router()

    @router.on_postback
    async def poison(ctx: Context) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.wait_for(release.wait(), DEADLINE)  # hangs until Bob got his reply
        raise RuntimeError("handler bug")

    h = Harness(router)
    await h.pool.start()
    base = now_ms()
    await h.deliver(record(ALICE, base, postback={"mid": "m_pb", "payload": "X"}))
    await h.deliver(record(ALICE, base + 1), record(BOB, base))
    await wait_for(lambda: bool(h.texts(BOB)))
    assert h.texts(ALICE) == []  # Alice's next message waits behind her poison event
    release.set()
    await h.settle()
    await h.pool.stop(grace=1)

    assert calls == 3
    dead = await h.inbox.dead_letters()
    assert [(d.kind, d.event.kind) for d in dead] == [(DeadLetterKind.HANDLER_FAILED, "postback")]
    assert "RuntimeError: handler bug" in (dead[0].error or "")
    assert await h.inbox.window_opened_at(PAGE, ALICE) == base  # stored with the dead letter
    assert h.texts(ALICE) == [f"You said: t{base + 1}"]
    assert h.sample("bot_handler_retries_total", event_type="postback") == 2
    assert h.sample("bot_dead_letters_total", event_type="postback") == 1
    assert (
        h.sample("bot_events_processed_total", event_type="postback", outcome="dead_lettered") == 1
    )


async def test_replayed_dead_letter_reaches_a_running_pool() -> None:
    fail = True
    router = Router()

    @router.on_text
    def flaky(ctx: Context) -> Reply:
        if fail:
            raise RuntimeError("down")
        return Reply.text("back up")

    h = Harness(router, handler_max_attempts=1)
    await h.pool.start()
    await h.deliver(record(ALICE))
    await h.settle()
    assert len(await h.inbox.dead_letters()) == 1
    fail = False
    assert await h.inbox.replay() == 1
    await wait_for(lambda: h.texts() == ["back up"])
    await h.pool.stop(grace=1)


async def test_stop_leaves_unprocessed_events_pending_for_the_next_start() -> None:
    h = Harness(ordering_window_ms=60_000)  # held far longer than the test runs
    await h.pool.start()
    await h.deliver(record(ALICE), record(BOB))
    await h.pool.stop(grace=1)
    assert not h.pool.running
    assert len(await h.inbox.pending()) == 2
    assert h.send_api.sent == []

    h.settings = settings(ordering_window_ms=0)
    h.pool = h.new_pool()
    await h.pool.start()
    await h.settle()
    await h.pool.stop(grace=1)
    assert len(h.send_api.sent) == 2 and await h.inbox.pending() == []


async def test_stop_waits_for_an_in_flight_event() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    router = Router()

    @router.on_text
    async def slow(ctx: Context) -> Reply:
        entered.set()
        await release.wait()
        return Reply.text("finished")

    h = Harness(router)
    await h.pool.start()
    await h.deliver(record(ALICE))
    await asyncio.wait_for(entered.wait(), DEADLINE)
    stopping = asyncio.create_task(h.pool.stop(grace=DEADLINE))
    await asyncio.sleep(0)
    release.set()
    await stopping
    assert h.texts() == ["finished"] and await h.inbox.pending() == []


async def test_restart_sends_only_the_replies_that_were_not_sent() -> None:
    calls = 0
    router = Router()

    def answer(ctx: Context) -> list[Reply]:
        nonlocal calls
        calls += 1
        return [Reply.text("one"), Reply.text("two")]

    router.on_text(answer)
    h = Harness(router)
    (stored,) = await h.enqueue(record(ALICE))
    assert stored is not None
    # A previous run handled the event, sent "one", then died before "two" went out.
    one, _ = await h.inbox.commit_handled(stored.id, [new_reply(0, "one"), new_reply(1, "two")])
    await h.inbox.update_replies([ReplyUpdate(one.id, ReplyState.SENT, 1)])
    await h.inbox.touch_window(PAGE, ALICE, now_ms())
    await h.pool.start()
    await h.settle()
    await h.pool.stop(grace=1)
    assert h.texts() == ["two"] and calls == 0  # the handler never runs again
    assert await h.inbox.unsettled_replies() == []


async def test_a_handler_with_random_output_that_fails_once_sends_its_replies_once() -> None:
    runs = 0
    router = Router()

    @router.on_text
    def lucky_number(ctx: Context) -> list[Reply]:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("flaky model")
        return [Reply.text(f"lucky {random.random()}"), Reply.text("bye")]

    h = Harness(router)
    await h.pool.start()
    await h.deliver(record(ALICE))
    await h.settle()
    await h.pool.stop(grace=1)
    assert runs == 2
    assert len(h.texts()) == 2 and h.texts()[0].startswith("lucky ") and h.texts()[1] == "bye"
    assert h.sample("bot_handler_retries_total", event_type="text") == 1


class FlakyCommits(MemoryInbox):
    """An inbox whose first ``failures`` handled-commits and reply-state writes fail."""

    def __init__(self, *, commit_failures: int = 0, state_failures: int = 0) -> None:
        super().__init__()
        self.commit_failures = commit_failures
        self.state_failures = state_failures

    async def commit_handled(self, event_id: int, replies: Any, state: Any = None) -> Any:
        if self.commit_failures:
            self.commit_failures -= 1
            raise InboxError("database is locked")
        return await super().commit_handled(event_id, replies, state)

    async def update_replies(self, updates: Any) -> None:
        if self.state_failures:
            self.state_failures -= 1
            raise InboxError("disk I/O error: no space left")
        await super().update_replies(updates)


async def test_a_failed_commit_is_retried_without_running_the_handler_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    router = Router()

    @router.on_text
    def varies(ctx: Context) -> Reply:
        nonlocal runs
        runs += 1
        return Reply.text(f"run {runs}")

    h = Harness(router, inbox=FlakyCommits(commit_failures=3))
    await h.pool.start()
    with caplog.at_level(logging.ERROR, logger="bot.engine"):
        await h.deliver(record(ALICE))
        await h.settle()
    await h.pool.stop(grace=1)
    assert runs == 1 and h.texts() == ["run 1"]
    assert await h.inbox.pending() == []
    assert h.sample("bot_inbox_write_retries_total", write="commit") == 3
    assert "inbox commit write failed (1 times), retrying" in caplog.text


async def test_failed_reply_state_writes_are_retried_and_never_read_as_not_sent() -> None:
    h = Harness(inbox=FlakyCommits(state_failures=4))  # full disk for a while
    await h.pool.start()
    await h.deliver(record(ALICE), record(BOB))
    await h.settle()
    await h.pool.stop(grace=1)
    assert sorted(call.psid for call in h.send_api.sent) == [ALICE, BOB]  # once each
    assert await h.inbox.unsettled_replies() == []
    assert h.sample("bot_inbox_write_retries_total", write="reply_state") == 4


async def test_a_client_bug_during_a_send_leaves_the_reply_to_the_echo_rule() -> None:
    crashed = False

    async def crash_once(call: SentCall) -> SendResult:
        nonlocal crashed
        if call.text == "two" and not crashed:
            crashed = True
            raise RuntimeError("client bug")
        return SendResult(ok=True)

    router = Router()
    router.on_text(lambda ctx: [Reply.text("one"), Reply.text("two")])
    # No echo comes (the fake platform has none): at-least-once sends it again after the wait.
    h = Harness(router, RecordingSendApi(crash_once), reply_echo_wait_seconds=0.05)
    await h.pool.start()
    await h.deliver(record(ALICE))
    await h.settle()
    await h.pool.stop(grace=1)
    assert h.texts() == ["one", "two"]
    assert h.sample("bot_reply_settlements_total", outcome="resent") == 1


def transient(code: int = 2) -> SendResult:
    return SendResult(ok=False, error_code=code, error_class=ErrorClass.TRANSIENT)


async def test_an_outage_longer_than_the_old_retries_loses_no_reply() -> None:
    outage_ends = time.monotonic() + 2.0  # the old engine gave up after about 1.5 s

    async def down_for_a_while(call: SentCall) -> SendResult:
        return transient() if time.monotonic() < outage_ends else SendResult(ok=True)

    h = Harness(
        send_api=RecordingSendApi(down_for_a_while),
        reply_backoff_base_seconds=0.02,
        reply_backoff_max_seconds=0.2,
    )
    await h.pool.start()
    users = [f"30000000000000{n:02d}" for n in range(10)]
    await h.deliver(*(record(user) for user in users))
    await asyncio.wait_for(h.pool.join(), 10)
    await h.pool.stop(grace=1)
    assert sorted(call.psid for call in h.send_api.sent) == users  # each exactly once
    assert h.sample("bot_replies_undeliverable_total") == 0


class Outage:
    """A Send API failing transiently until ``up`` is set; replies back off for ten minutes,
    so only "Graph is back" brings them out within DEADLINE (a draw that short: 1 in 120)."""

    def __init__(self) -> None:
        self.up = False
        self.harness = Harness(
            send_api=RecordingSendApi(self._answer),
            reply_backoff_base_seconds=600,
            reply_backoff_max_seconds=600,
        )

    async def _answer(self, call: SentCall) -> SendResult:
        return SendResult(ok=True) if self.up else transient()


async def test_when_graph_is_back_replies_in_back_off_go_out_at_once() -> None:
    outage = Outage()
    h = outage.harness
    await h.pool.start()
    await h.deliver(record(ALICE))
    await wait_for(lambda: len(h.send_api.calls) == 1)
    outage.up = True
    await h.deliver(record(BOB))  # Bob's reply is the first to get through
    await h.send_api.wait_for(2, within=DEADLINE)
    await h.pool.stop(grace=1)
    assert [call.psid for call in h.send_api.sent] == [BOB, ALICE]


async def test_past_its_deadline_a_reply_becomes_a_replayable_dead_letter() -> None:
    up = False

    async def outage(call: SentCall) -> SendResult:
        return SendResult(ok=True) if up else transient(1)

    h = Harness(
        send_api=RecordingSendApi(outage),
        reply_deadline_seconds=0.2,
        reply_backoff_base_seconds=0.02,
        reply_backoff_max_seconds=0.05,
    )
    await h.pool.start()
    await h.deliver(record(ALICE))
    await h.settle()
    [dead] = await h.inbox.dead_letters()
    assert dead.kind is DeadLetterKind.REPLY_UNDELIVERABLE and dead.reply is not None
    assert "deadline" in (dead.error or "")
    assert h.sample("bot_replies_undeliverable_total") == 1
    assert h.texts() == []

    up = True
    assert await h.inbox.replay(reply_ids=[dead.id]) == 1
    await wait_for(lambda: len(h.texts()) == 1)
    await h.pool.stop(grace=1)
    assert await h.inbox.dead_letters() == []


async def test_a_refused_reply_is_dead_lettered_alone() -> None:
    async def refuse_one(call: SentCall) -> SendResult:
        if call.psid == ALICE:  # e.g. a lone surrogate Graph cannot decode
            return SendResult(ok=False, error_code=100, error_class=ErrorClass.PERMANENT)
        return SendResult(ok=True)

    h = Harness(send_api=RecordingSendApi(refuse_one))
    await h.pool.start()
    await h.deliver(record(ALICE), record(BOB), record("1000000000000003"))
    await h.settle()
    await h.pool.stop(grace=1)
    assert sorted(call.psid for call in h.send_api.sent) == [BOB, "1000000000000003"]
    [dead] = await h.inbox.dead_letters()
    assert dead.kind is DeadLetterKind.REPLY_UNDELIVERABLE and dead.event.sender_key == ALICE
    assert dead.error == "Send API refused the reply: none"


async def test_consumer_span_links_to_producer_and_parents_the_send_api_client_span() -> None:
    def graph(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"recipient_id": ALICE, "message_id": "m_out"})

    h = Harness()
    api = HttpSendApi(
        h.settings, h.metrics, tracer_provider=h.provider, transport=httpx.MockTransport(graph)
    )
    h.send_api = api
    h.pool = h.new_pool()
    tracer = h.provider.get_tracer("edge")
    with tracer.start_as_current_span("send bot.inbound", kind=SpanKind.PRODUCER) as producer:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
    await h.pool.start()
    await h.deliver(record(ALICE, text="private words", traceparent=carrier["traceparent"]))
    await h.settle()
    await h.pool.stop(grace=1)
    await api.aclose()

    spans = h.exporter.get_finished_spans()
    consumer = next(s for s in spans if s.kind is SpanKind.CONSUMER)
    client = next(s for s in spans if s.kind is SpanKind.CLIENT)
    producer_ctx = producer.get_span_context()
    assert consumer.name == "process bot.inbound"
    assert consumer.parent is not None and consumer.parent.span_id == producer_ctx.span_id
    assert [link.context.span_id for link in consumer.links] == [producer_ctx.span_id]
    assert client.parent is not None and client.parent.span_id == consumer.context.span_id
    assert client.context.trace_id == producer_ctx.trace_id
    attributes = dict(consumer.attributes or {})
    assert attributes["bot.event_type"] == "text"
    assert len(str(attributes["user.hash"])) == 24  # hashed by default: no raw PSID in spans
    assert not any(v == ALICE for s in spans for v in (s.attributes or {}).values())
    assert "bot.mid" in attributes
    assert not any("private words" in str(v) for s in spans for v in (s.attributes or {}).values())


async def test_an_event_in_back_off_does_not_hold_the_only_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.processor.backoff_delay", lambda attempt, **_: 60.0)
    router = echo_router()

    @router.on_postback
    def fails(ctx: Context) -> Reply:
        raise RuntimeError("down")

    h = Harness(router, worker_concurrency=1)
    await h.pool.start()
    await h.deliver(record(ALICE, postback={"mid": "m_pb", "payload": "X"}))
    await wait_for(lambda: h.sample("bot_handler_retries_total", event_type="postback") == 1)
    ts = now_ms()
    await h.deliver(record(BOB, ts))  # Alice waits a minute; Bob must not
    await wait_for(lambda: h.texts(BOB) == [f"You said: t{ts}"])
    await h.pool.stop(grace=1)
    [pending] = await h.inbox.pending()
    assert (pending.sender_key, pending.attempts) == (ALICE, 1)


async def test_a_lagging_loop_lowers_the_limit_and_work_resumes_as_it_recovers() -> None:
    h = Harness(worker_concurrency=16, worker_min_concurrency=4)
    await h.pool.start()
    assert h.pool.limit == 16
    blocked_until = time.perf_counter() + 0.06
    while time.perf_counter() < blocked_until:  # a CPU hog holding the event loop
        pass
    await wait_for(lambda: h.pool.limit < 16)
    base = now_ms()
    await h.deliver(*(record(f"10000000000000{n:02d}", base) for n in range(20)))
    await h.settle()
    assert len(h.texts()) == 20
    await wait_for(lambda: h.pool.limit == 16)
    await h.pool.stop(grace=1)


async def test_join_returns_once_done_marks_are_committed(tmp_path: Path) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db", synchronous="NORMAL")
    await inbox.open()
    h = Harness(inbox=inbox)
    await h.pool.start()
    await h.deliver(*(record(f"20000000000000{n:02d}") for n in range(10)))
    await h.settle()
    # stats() reads through a second connection: it sees committed rows only.
    assert (await inbox.stats()).pending == 0
    assert len(h.texts()) == 10
    await h.pool.stop(grace=1)
    await inbox.close()


def echo_of(psid: str, metadata: str, mid: str) -> InboxRecord:
    """What Meta sends back for a message the page sent (reference §3.6)."""
    return record(
        psid,
        sender={"id": PAGE},
        recipient={"id": psid},
        message={"mid": mid, "is_echo": True, "text": "x", "metadata": metadata},
    )


async def test_every_send_carries_its_key_beside_the_handlers_own_metadata() -> None:
    router = Router()
    router.on_text(lambda ctx: [Reply({"text": "a", "metadata": "order-7"}), Reply.text("b")])
    h = Harness(router)
    await h.pool.start()
    await h.deliver(record(ALICE))
    await h.settle()
    await h.pool.stop(grace=1)
    first, second = h.send_api.metadata
    assert isinstance(first, str) and isinstance(second, str)  # every send carries its key
    assert key_from_metadata(first) is not None and handler_metadata(first) == "order-7"
    assert key_from_metadata(second) == key_from_metadata(first) + 1  # type: ignore[operator]
    assert handler_metadata(second) is None


@pytest.mark.parametrize(
    ("guarantee", "echo", "sends", "outcome"),
    [
        ("at_least_once", True, 1, "echo"),
        ("at_least_once", False, 2, "resent"),
        ("at_most_once", False, 1, "dropped"),
    ],
)
async def test_a_lost_answer_is_settled_by_the_echo_rule(
    guarantee: str, echo: bool, sends: int, outcome: str
) -> None:
    calls = 0
    keys: list[str] = []

    async def reset_after_sending(call: SentCall) -> SendResult:
        nonlocal calls
        calls += 1
        keys.append(call.message["metadata"])
        if calls == 1:  # delivered, but the answer was lost
            return SendResult(ok=False, error_class=ErrorClass.RISKY, error_label="network")
        return SendResult(ok=True)

    h = Harness(
        send_api=RecordingSendApi(reset_after_sending),
        reply_guarantee=guarantee,
        reply_echo_wait_seconds=DEADLINE if echo else 0.05,
    )
    await h.pool.start()
    await h.deliver(record(ALICE))
    await wait_for(lambda: calls == 1)
    if echo:
        await h.deliver(echo_of(ALICE, keys[0], "m_echo_1"))
    await h.settle()
    await h.pool.stop(grace=1)
    assert calls == sends
    assert h.sample("bot_reply_settlements_total", outcome=outcome) == 1
    assert await h.inbox.unsettled_replies() == []


async def test_a_reply_left_sending_by_a_crash_is_settled_by_its_echo_after_restart() -> None:
    h = Harness(reply_echo_wait_seconds=DEADLINE)
    stored = await h.enqueue(record(ALICE), record(BOB))
    replies = []
    for event in stored:
        assert event is not None
        replies += await h.inbox.commit_handled(
            event.id, [new_reply(0, "answer", psid=event.sender_key)]
        )
        await h.inbox.touch_window(PAGE, event.sender_key, now_ms())
    await h.inbox.update_replies([ReplyUpdate(r.id, ReplyState.SENDING, 1) for r in replies])
    await h.pool.start()  # the previous process died while both were on the wire
    # Alice's reply reached Meta (its echo arrives); Bob's did not.
    await h.deliver(echo_of(ALICE, f"mhb1:{replies[0].id}", "m_echo_alice"))
    await wait_for(lambda: h.sample("bot_reply_settlements_total", outcome="echo") == 1)
    assert h.send_api.sent == []
    await h.pool.stop(grace=1)  # Bob's reply is still waiting for its echo
    h.settings = settings(reply_echo_wait_seconds=0)  # a restart that waits no more
    h.pool = h.new_pool()
    await h.pool.start()
    await h.settle()
    await h.pool.stop(grace=1)
    assert h.texts() == ["answer"] and h.send_api.sent[0].psid == BOB
    assert h.sample("bot_reply_settlements_total", outcome="resent") == 1


async def test_a_dropped_reply_is_logged_with_its_reason_and_no_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    await h.pool.start()
    with caplog.at_level(logging.INFO, logger="bot.outbox"):
        await h.deliver(record(ALICE, now_ms() - 25 * 3600 * 1000, text="secret words"))
        await h.settle()
    await h.pool.stop(grace=1)
    [line] = [r for r in caplog.records if r.name == "bot.outbox"]
    assert line.levelno == logging.INFO and line.getMessage() == "reply dropped: outside_window"
    assert getattr(line, "psid", None) == ALICE
    assert "secret" not in caplog.text


async def test_without_echoes_the_bot_warns_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(echoes_subscribed=False)
    with caplog.at_level(logging.WARNING, logger="bot.engine"):
        await h.pool.start()
    await h.pool.stop(grace=1)
    assert "MESSENGER_ECHOES_SUBSCRIBED is off" in caplog.text


async def test_slow_acks_slow_the_workers_down_but_never_stop_them() -> None:
    h = Harness(worker_concurrency=16, worker_min_concurrency=2, ack_budget_seconds=0.001)
    await h.pool.start()
    h.pool.note_ack(0.001)

    def flooded() -> bool:
        h.pool.note_ack(5.0)  # every poll: another ack far past the budget
        return h.pool.limit == 2

    await wait_for(flooded)
    await h.deliver(*(record(f"40000000000000{n:02d}") for n in range(10)))
    await wait_for(lambda: flooded() and len(h.texts()) == 10)
    await h.pool.stop(grace=1)


async def test_while_the_edge_refuses_the_workers_keep_the_overload_concurrency() -> None:
    h = Harness(worker_concurrency=16, worker_min_concurrency=2, worker_overload_concurrency=12)
    await h.pool.start()

    def lagging() -> int:
        blocked_until = time.perf_counter() + 0.02
        while time.perf_counter() < blocked_until:  # a CPU hog holding the event loop
            pass
        return h.pool.limit

    await wait_for(lambda: lagging() < 12)  # the lag halves the limit towards its floor, 2
    h.pool.set_overloaded(True)  # a flood: the 503s are cheap, the replies keep their pace
    assert h.pool.limit == 12  # at once (half the ceiling, 8, is not the setting)
    hogs = 0

    def lagging_a_while() -> bool:  # long enough to halve 12 down to 2 without the flood
        nonlocal hogs
        hogs += 1
        return lagging() < 12 or hogs >= 10

    await wait_for(lagging_a_while)
    assert h.pool.limit >= 12  # the lag no longer takes it lower
    h.pool.set_overloaded(False)
    await wait_for(lambda: lagging() < 12)
    await h.pool.stop(grace=1)


async def test_an_echo_for_a_reply_in_back_off_settles_it_instead_of_a_second_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.outbox.backoff_delay", lambda attempt, **_: 60.0)
    calls = 0
    keys: list[str] = []

    async def delivered_but_5xx(call: SentCall) -> SendResult:
        nonlocal calls
        calls += 1
        keys.append(call.message["metadata"])
        return transient()  # Graph said 500, yet the message went out

    h = Harness(send_api=RecordingSendApi(delivered_but_5xx))
    await h.pool.start()
    await h.deliver(record(ALICE))
    await wait_for(lambda: calls == 1)
    await h.deliver(echo_of(ALICE, keys[0], "m_echo_late"))
    await h.settle()  # long before the minute of back-off ends
    await h.pool.stop(grace=1)
    assert calls == 1
    assert h.sample("bot_replies_settled_total", state="sent") == 1


@pytest.mark.parametrize("guarantee", ["at_least_once", "at_most_once"])
async def test_a_reply_a_crash_kept_from_graph_goes_out_at_once_after_restart(
    guarantee: str,
) -> None:
    stuck = asyncio.Event()

    async def hangs(call: SentCall) -> None:
        stuck.set()
        await asyncio.Event().wait()  # the process dies during this call

    # One reply on the wire at a time: Alice's hangs there, Bob's waits its turn.
    h = Harness(
        send_api=RecordingSendApi(hangs),
        outbox_concurrency=1,
        reply_guarantee=guarantee,
        reply_echo_wait_seconds=3600,
    )
    await h.pool.start()
    await h.deliver(record(ALICE))
    async with asyncio.timeout(DEADLINE):
        await stuck.wait()
    await h.deliver(record(BOB))

    async def both_committed() -> bool:
        return len(await h.inbox.unsettled_replies()) == 2

    await eventually(both_committed, within=DEADLINE)
    await h.pool.stop(grace=0)  # the crash, as far as the inbox can tell
    h.send_api = RecordingSendApi()
    h.pool = h.new_pool()
    await h.pool.start()
    # Bob's reply never left, so it needs no echo: it goes out at once. Alice's was on the
    # wire: it waits for its echo (at-least-once) or is dropped (at-most-once).
    await h.send_api.wait_for(1, within=DEADLINE)
    await h.pool.stop(grace=1)
    assert [call.psid for call in h.send_api.sent] == [BOB]


async def test_an_inbox_locked_for_longer_than_its_busy_timeout_delays_but_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.inbox_sqlite._BUSY_TIMEOUT_SECONDS", 0.2)  # 5 s in production
    runs = 0
    router = Router()

    @router.on_text
    def answer(ctx: Context) -> Reply:
        nonlocal runs
        runs += 1
        return Reply.text("late but once")

    inbox = SqliteInbox(tmp_path / "inbox.db", synchronous="NORMAL")
    await inbox.open()
    h = Harness(router, inbox=inbox, ordering_window_ms=300)
    await h.pool.start()
    await h.deliver(record(ALICE))  # stored; handled once its ordering hold ends
    locked = threading.Event()

    def hold_the_lock() -> None:  # another writer keeps a transaction open past busy_timeout
        conn = sqlite3.connect(tmp_path / "inbox.db", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        threading.Event().wait(2.0)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    await asyncio.to_thread(locked.wait)
    await asyncio.wait_for(h.pool.join(), 20)
    await asyncio.to_thread(holder.join)
    await h.pool.stop(grace=1)
    assert runs == 1 and h.texts() == ["late but once"]
    assert h.sample("bot_inbox_write_retries_total", write="commit") >= 1
    assert await inbox.pending() == [] and await inbox.unsettled_replies() == []
    await inbox.close()


async def test_the_backlog_and_finished_count_feed_admission_control() -> None:
    h = Harness(worker_concurrency=16, ordering_window_ms=60_000)  # held: nothing runs yet
    await h.pool.start()
    base = now_ms()
    await h.deliver(*(record(f"20000000000000{n:02d}", base) for n in range(5)))
    assert (h.pool.backlog, h.pool.completed) == (5, 0)
    await h.pool.stop(grace=1)

    h = Harness(worker_concurrency=16)
    await h.pool.start()
    await h.deliver(*(record(f"20000000000000{n:02d}", base) for n in range(5)))
    await h.settle()
    assert (h.pool.backlog, h.pool.completed) == (0, 5)
    await h.pool.stop(grace=1)


async def test_events_in_progress_and_the_worker_limit_are_on_metrics() -> None:
    release = asyncio.Event()
    router = Router()

    @router.on_text
    async def slow(ctx: Context) -> Reply:
        await release.wait()
        return Reply.text("done")

    h = Harness(router, worker_concurrency=8, worker_min_concurrency=2)
    await h.pool.start()
    base = now_ms()
    await h.deliver(*(record(f"30000000000000{n:02d}", base) for n in range(3)))
    await wait_for(lambda: h.sample("bot_events_in_progress") == 3)
    assert h.sample("bot_worker_limit_events") == h.pool.limit
    assert 2 <= h.pool.limit <= 8
    release.set()
    await h.settle()
    assert h.sample("bot_events_in_progress") == 0
    await h.pool.stop(grace=1)


async def test_unsettled_replies_and_their_settling_feed_admission_control() -> None:
    graph = asyncio.Event()

    async def slow_graph(call: SentCall) -> SendResult:
        await graph.wait()
        return SendResult(ok=True)

    h = Harness(send_api=RecordingSendApi(slow_graph), worker_concurrency=16)
    await h.pool.start()
    await h.deliver(*(record(f"20000000000000{n:02d}") for n in range(5)))
    # Every handler is done; the five replies are on their way, none waits for anything.
    await wait_for(lambda: h.pool.completed == 5 and len(h.send_api.calls) == 5)
    assert (h.pool.reply_backlog, h.pool.replies_settled, h.pool.replies_ready) == (5, 0, 5)
    graph.set()
    await h.settle()
    assert (h.pool.reply_backlog, h.pool.replies_settled, h.pool.replies_ready) == (0, 5, 0)
    await h.pool.stop(grace=1)


async def test_replies_held_up_by_a_throttled_conversation_are_not_ready() -> None:
    # Graph throttles Alice: her first reply backs off and her second queues behind it, so
    # neither is work the core can do. Bob's reply is on its way and counts.
    alice_up, bob_answers = False, asyncio.Event()

    async def graph(call: SentCall) -> SendResult:
        if call.psid == ALICE:
            return SendResult(ok=True) if alice_up else transient()
        await bob_answers.wait()
        return SendResult(ok=True)

    h = Harness(
        send_api=RecordingSendApi(graph),
        reply_backoff_base_seconds=600,
        reply_backoff_max_seconds=600,
    )
    await h.pool.start()
    base = now_ms()
    await h.deliver(record(ALICE, base), record(ALICE, base + 1), record(BOB, base))
    await wait_for(lambda: h.pool.completed == 3 and h.pool.replies_ready == 1)
    assert h.pool.reply_backlog == 3
    assert [call.psid for call in h.send_api.calls].count(ALICE) == 1  # the second waits
    alice_up = True
    bob_answers.set()  # Bob's success says Graph is back: Alice's replies go at once
    await h.settle()
    assert (h.pool.reply_backlog, h.pool.replies_settled, h.pool.replies_ready) == (0, 3, 0)
    await h.pool.stop(grace=1)


class FlakyWindowReads(MemoryInbox):
    """A window store that is down for its first ``failures`` reads (not an ``InboxError``:
    a client library's own error, as a Redis outage raises)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("window store unreachable")
        return await super().window_opened_at(page_id, psid)


async def test_a_reply_whose_window_read_fails_tries_again_instead_of_sticking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = Router()
    router.on_read(lambda ctx: Reply.text("thanks for reading"))
    h = Harness(
        router,
        inbox=FlakyWindowReads(failures=2),
        reply_backoff_base_seconds=0.01,
        reply_backoff_max_seconds=0.02,
    )
    await h.inbox.touch_window(PAGE, ALICE, now_ms() - 3600 * 1000)  # only the store knows it
    await h.pool.start()
    with caplog.at_level(logging.ERROR, logger="bot.outbox"):
        await h.deliver(record(ALICE, read={"watermark": now_ms()}))
        await h.settle()  # before the fix the reply stayed unsettled until a restart
    await h.pool.stop(grace=1)
    assert h.texts() == ["thanks for reading"]  # once
    assert h.sample("bot_step_failures_total", lane="outbox") == 2
    assert (h.pool.reply_backlog, h.pool.replies_ready, h.pool.replies_settled) == (0, 0, 1)
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("reply step failed, trying again (1)") == 1


class FailingSentMark(MemoryInbox):
    """An inbox whose first "sent" mark raises something no retry expects."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def update_replies(self, updates: Any) -> None:
        if not self.failed and any(u.state is ReplyState.SENT for u in updates):
            self.failed = True
            raise RuntimeError("driver bug")
        await super().update_replies(updates)


async def test_a_step_that_fails_after_the_call_leaves_the_reply_to_its_echo() -> None:
    h = Harness(inbox=FailingSentMark(), reply_echo_wait_seconds=DEADLINE)
    await h.pool.start()
    await h.deliver(record(ALICE))
    await wait_for(lambda: h.sample("bot_step_failures_total", lane="outbox") == 1)
    # The call went out: without its echo the reply would be sent again after the wait.
    await h.deliver(echo_of(ALICE, h.send_api.metadata[0], "m_echo_1"))
    await h.settle()
    await h.pool.stop(grace=1)
    assert len(h.send_api.sent) == 1
    assert h.sample("bot_reply_settlements_total", outcome="echo") == 1
    assert await h.inbox.unsettled_replies() == []


class BrokenFirstCommit(MemoryInbox):
    """An inbox whose first handled-commit raises something no retry expects."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def commit_handled(self, event_id: int, replies: Any, state: Any = None) -> Any:
        if self.broken:
            self.broken = False
            raise RuntimeError("driver bug")
        return await super().commit_handled(event_id, replies, state)


async def test_an_event_whose_attempt_raises_before_its_commit_tries_again() -> None:
    h = Harness(inbox=BrokenFirstCommit(), handler_backoff_base_seconds=0.01)
    await h.pool.start()
    await h.deliver(record(ALICE, text="hello"))
    await h.settle()  # before, the event stayed pending (and unanswered) until a restart
    await h.pool.stop(grace=1)
    assert h.texts() == ["You said: hello"]
    assert h.sample("bot_step_failures_total", lane="events") == 1
    assert h.pool.completed == 1
    assert await h.inbox.pending() == []


class FlakyStateReads(MemoryInbox):
    """An inbox whose state reads fail a number of times, as a busy Redis's did."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise InboxError("redis failed: Too many connections")
        return await super().load(page_id, psid)


async def test_a_state_read_that_fails_more_often_than_the_handler_may_is_no_dead_letter() -> None:
    inbox = FlakyStateReads(failures=5)
    h = Harness(inbox=inbox, handler_max_attempts=3, handler_backoff_base_seconds=0.005)
    await h.pool.start()
    await h.deliver(record(ALICE, text="hello"))
    await h.settle()  # before, the third failed read dead-lettered the event
    await h.pool.stop(grace=1)
    assert h.texts() == ["You said: hello"]
    assert await inbox.dead_letters() == []
    assert h.sample("bot_step_failures_total", lane="events") == 5
    assert h.sample("bot_events_processed_total", event_type="text", outcome="failed") == 0


async def test_a_backlog_the_floor_holds_back_drains_at_the_catch_up_floor() -> None:
    release = asyncio.Event()

    async def slow(ctx: Context) -> Reply:
        await release.wait()
        return Reply.text("done")

    router = Router()
    router.on_text(slow)
    h = Harness(
        router, worker_concurrency=8, worker_min_concurrency=2, worker_catch_up_concurrency=6
    )
    await h.pool.start()
    h.pool._probe.stop()  # type: ignore[union-attr]  # the test plays the loop's lag itself
    await h.deliver(*(record(f"50000000000000{n:02d}") for n in range(30)))
    await wait_for(lambda: h.sample("bot_events_in_progress") == 8)
    busy = 0.010  # every tick: a loop far past its 2 ms target
    for _ in range(DEMAND_SAMPLE_TICKS):  # the burst arrives: nothing finished, a flood?
        h.pool._on_lag(busy)
    assert h.pool.limit == 2
    for _ in range(DEMAND_SAMPLE_TICKS):  # no more arrivals, 28 waiting: catch up
        h.pool._on_lag(busy)
    assert h.sample("bot_worker_limit_events") == 6
    release.set()
    await h.settle()
    assert len(h.texts()) == 30
    await h.pool.stop(grace=1)
