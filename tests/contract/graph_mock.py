"""An in-process mock for Graph-surface contract tests: ``mock`` fixture, constants, bodies.

The mock's webhooks go to :class:`Webhooks` through ``httpx.MockTransport``; the clock is
frozen at a fixed instant and the demo user's 24 h window is open.
"""

from __future__ import annotations

import asyncio
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
from mock_meta.settings import MockSettings

PAGE = "104501234567890"
PSID = "6543210987654321"
APP = "1234567890123456"
TOKEN = "test_page_token"
APP_TOKEN = f"{APP}|test_app_secret"


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
    client: httpx.AsyncClient
    runtime: MockRuntime
    clock: ControllableClock
    webhooks: Webhooks
    registry: CollectorRegistry
    transport: httpx.AsyncBaseTransport

    def control(self) -> MockMetaClient:
        """A control-API client for this in-process mock."""
        return MockMetaClient("http://mock", transport=self.transport)


@pytest.fixture
async def mock() -> AsyncIterator[Mock]:
    webhooks = Webhooks()
    clock = ControllableClock(start=1_800_000_000.0)
    registry = CollectorRegistry()
    hooks = httpx.AsyncClient(transport=httpx.MockTransport(webhooks.handle))
    app = create_app(MockSettings(), clock=clock, registry=registry, http_client=hooks)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            runtime: MockRuntime = app.state.runtime
            # The user wrote a minute ago: the 24 h window is open.
            runtime.state.record_inbound(PAGE, PSID, clock.now() - 60)
            yield Mock(client, runtime, clock, webhooks, registry, transport)
    await hooks.aclose()


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
