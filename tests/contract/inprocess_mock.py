"""The mock platform in-process for Graph-level tests: ``async with graph_mock() as mock``.

Webhooks the mock would deliver go to a recorder instead of a bot; the seeded user wrote a
minute ago, so the 24-hour window is open.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from bot.testing import PAGE_ID, PAGE_TOKEN, PSID
from mock_meta.app import create_app
from mock_meta.clock import ControllableClock
from mock_meta.runtime import MockRuntime
from mock_meta.settings import MockSettings

BASE_URL = "http://mock"


@dataclass
class GraphMock:
    """An in-process mock: ``client`` speaks to its Graph surface; ``webhooks`` it delivered."""

    client: httpx.AsyncClient
    transport: httpx.AsyncBaseTransport
    runtime: MockRuntime
    webhooks: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, fields: dict[str, Any]) -> httpx.Response:
        """``POST /me/messages`` with the seed's page token."""
        return await self.client.post(
            "/v25.0/me/messages", json={**fields, "access_token": PAGE_TOKEN}
        )


@contextlib.asynccontextmanager
async def graph_mock() -> AsyncIterator[GraphMock]:
    delivered: list[dict[str, Any]] = []

    def bot(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, text=request.url.params["hub.challenge"])
        delivered.append(json.loads(request.content))
        return httpx.Response(200, text="EVENT_RECEIVED")

    clock = ControllableClock(start=1_800_000_000.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(bot)) as hooks:
        app = create_app(
            MockSettings(), clock=clock, registry=CollectorRegistry(), http_client=hooks
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                runtime: MockRuntime = app.state.runtime
                runtime.state.record_inbound(PAGE_ID, PSID, clock.now() - 60)
                yield GraphMock(client, transport, runtime, delivered)
