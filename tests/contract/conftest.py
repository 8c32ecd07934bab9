"""Fixtures for the bot <-> mock contract tests (the harness lives in ``bot_mock_pair.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from bot.app import create_app as create_bot
from bot.routing import Router
from bot.testing import make_settings
from mock_meta.app import create_app as create_mock
from mock_meta.client import MockMetaClient
from mock_meta.clock import ControllableClock
from mock_meta.settings import MockSettings
from tests.contract.bot_mock_pair import (
    BotMockPair,
    GraphTap,
    StartPair,
    WebhookSwitch,
    bound_socket,
    serve_on,
)


@pytest_asyncio.fixture
async def start_pair(tmp_path: Path) -> AsyncIterator[StartPair]:
    """``await start_pair(router=None, mock_clock=None, mock=dict(...), **bot_env)``.

    ``bot_env`` are BotSettings aliases (``ORDERING_WINDOW_MS=300``); ``mock`` are
    MockSettings overrides. Everything started is stopped at teardown, bot first.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            *,
            router: Router | None = None,
            mock_clock: ControllableClock | None = None,
            mock: dict[str, Any] | None = None,
            **bot_env: Any,
        ) -> BotMockPair:
            bot_sock = bound_socket()
            stack.callback(bot_sock.close)
            bot_url = f"http://127.0.0.1:{bot_sock.getsockname()[1]}"

            mock_sock = bound_socket()
            stack.callback(mock_sock.close)
            mock_url = f"http://127.0.0.1:{mock_sock.getsockname()[1]}"
            mock_settings = MockSettings(port=0, callback_url=f"{bot_url}/webhook", **(mock or {}))
            mock_app = create_mock(mock_settings, clock=mock_clock, registry=CollectorRegistry())
            tap = GraphTap(mock_app)
            await stack.enter_async_context(serve_on(tap, mock_sock))
            client = await stack.enter_async_context(MockMetaClient(mock_url))

            settings = make_settings(
                **{
                    "GRAPH_API_BASE": mock_url,
                    "GRAPH_API_VERSION": mock_settings.graph_version,
                    "INBOX_PATH": str(tmp_path / f"inbox-{bot_sock.getsockname()[1]}.db"),
                    "SEND_API_BACKOFF_BASE_SECONDS": 0.01,
                    "SEND_API_BACKOFF_MAX_SECONDS": 0.05,
                    "HANDLER_BACKOFF_BASE_SECONDS": 0.01,
                    "REPLY_BACKOFF_BASE_SECONDS": 0.01,
                    "REPLY_BACKOFF_MAX_SECONDS": 0.1,
                    "SHUTDOWN_GRACE_SECONDS": 2,
                    **bot_env,
                }
            )
            registry = CollectorRegistry()
            spans = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(spans))
            bot_app = create_bot(
                settings, router=router, registry=registry, tracer_provider=provider
            )
            switch = WebhookSwitch(bot_app)
            await stack.enter_async_context(serve_on(switch, bot_sock))
            # Runs before the server stops: a held webhook must not block the shutdown.
            stack.callback(switch.release)
            return BotMockPair(
                mock=client,
                mock_url=mock_url,
                graph=tap,
                bot_url=bot_url,
                bot_settings=settings,
                registry=registry,
                spans=spans,
                switch=switch,
            )

        yield start


@pytest_asyncio.fixture
async def pair(start_pair: StartPair) -> BotMockPair:
    """A bot with the default handlers and a mock with the demo seed."""
    return await start_pair()
