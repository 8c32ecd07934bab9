"""The mock platform in-process for Graph-surface tests: ``mock`` fixture or ``graph_mock()``.

The mock's webhooks go to :class:`Webhooks` through ``httpx.MockTransport`` instead of a bot;
the clock is frozen at a fixed instant and the seeded user wrote a minute ago, so the 24-hour
window is open. ``GatedTransport`` holds the first request so sends behind it pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from mock_meta.app import create_app
from mock_meta.client import MockMetaClient
from mock_meta.clock import ControllableClock
from mock_meta.runtime import MockRuntime
from mock_meta.settings import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PAGE_ID,
    DEFAULT_PAGE_TOKEN,
    DEFAULT_PSID,
    MockSettings,
)

BASE_URL = "http://mock"
PAGE = DEFAULT_PAGE_ID
PSID = DEFAULT_PSID
APP = DEFAULT_APP_ID
TOKEN = DEFAULT_PAGE_TOKEN
APP_TOKEN = f"{APP}|{DEFAULT_APP_SECRET}"


@dataclass
class Webhooks:
    """Stands in for the bot: records what the mock sends and answers like a healthy bot."""

    posts: list[dict[str, object]] = field(default_factory=list)
    challenge_status: int = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            if self.challenge_status != 200:
                return httpx.Response(self.challenge_status, text="nope")
            return httpx.Response(200, text=request.url.params["hub.challenge"])
        self.posts.append(json.loads(request.content))
        return httpx.Response(200, text="EVENT_RECEIVED")


@dataclass
class Mock:
    """An in-process mock: ``client`` speaks to its Graph surface, ``transport`` reaches it
    from other clients (the bot's ``PageApi``, ``HttpSendApi``), ``webhooks`` it delivered."""

    client: httpx.AsyncClient
    runtime: MockRuntime
    clock: ControllableClock
    webhooks: Webhooks
    registry: CollectorRegistry
    transport: httpx.AsyncBaseTransport

    def control(self) -> MockMetaClient:
        """A control-API client for this in-process mock."""
        return MockMetaClient(BASE_URL, transport=self.transport)

    async def send(self, fields: dict[str, Any]) -> httpx.Response:
        """``POST /me/messages`` with the seed's page token."""
        return await self.client.post("/v25.0/me/messages", json={**fields, "access_token": TOKEN})


@contextlib.asynccontextmanager
async def graph_mock() -> AsyncIterator[Mock]:
    """``async with graph_mock() as mock:`` the mock app with its lifespan run."""
    webhooks = Webhooks()
    clock = ControllableClock(start=1_800_000_000.0)
    registry = CollectorRegistry()
    async with httpx.AsyncClient(transport=httpx.MockTransport(webhooks.handle)) as hooks:
        app = create_app(MockSettings(), clock=clock, registry=registry, http_client=hooks)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                runtime: MockRuntime = app.state.runtime
                runtime.state.record_inbound(PAGE, PSID, clock.now() - 60)
                yield Mock(client, runtime, clock, webhooks, registry, transport)


@pytest.fixture
async def mock() -> AsyncIterator[Mock]:
    async with graph_mock() as running:
        yield running


def text_body(text: str = "hello") -> dict[str, object]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": text}}


class GatedTransport(httpx.AsyncBaseTransport):
    """The mock app over ASGI, recording paths; holds the first request until ``gate`` opens
    so the sends behind it pile up (and are batched) deterministically."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app)
        self.gate = asyncio.Event()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if len(self.paths) == 1:
            await self.gate.wait()
        return await self._inner.handle_async_request(request)
