"""The edge's report of each ack to the workers (``EventSink.note_ack``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from opentelemetry import trace
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from bot.inbox import InboxRecord, StoredEvent
from bot.inbox_memory import MemoryInbox
from bot.metrics import BotMetrics
from bot.testing import make_settings, signed_envelope, text_item
from bot.webhook import WebhookEdge

SLOW_DISK = 0.3


class SlowDiskInbox(MemoryInbox):
    """Every commit waits as if the disk were slow (or busy with another process)."""

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        await asyncio.sleep(SLOW_DISK)
        return await super().enqueue(records)


class Sink:
    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.acks: list[float] = []
        self.totals: list[float] = []
        self.running = True

    def submit(self, events: list[StoredEvent]) -> None:
        self.events.extend(events)

    def note_ack(self, seconds: float, total: float) -> None:
        self.acks.append(seconds)
        self.totals.append(total)


async def test_a_slow_commit_is_not_reported_as_a_slow_loop() -> None:
    # Fewer events in progress cannot make the disk faster: the workers must not yield to it.
    edge = WebhookEdge(make_settings(), BotMetrics(CollectorRegistry()), trace.NoOpTracer())
    sink = Sink()
    edge.attach(SlowDiskInbox(), sink)
    app = Starlette(routes=edge.routes())
    body, headers = signed_envelope([text_item("hello")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bot") as c:
        answer = await c.post("/webhook", content=body, headers=headers)
    assert answer.status_code == 200 and len(sink.events) == 1
    assert len(sink.acks) == 1 and sink.acks[0] < SLOW_DISK / 3
    assert sink.totals[0] >= SLOW_DISK  # the whole answer time, for the catch-up's guard
