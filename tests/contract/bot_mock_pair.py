"""The bot and the mock platform wired together over real HTTP on 127.0.0.1 (test harness).

``start_pair(...)`` (a ``conftest.py`` fixture) builds both apps in the test process: the
mock (``mock_meta.app.create_app``) and the bot (``bot.app.create_app`` with a fresh registry
and an in-memory span exporter), each served by uvicorn on a socket bound before either app
exists, so each knows the other's URL from the start. (Not ``mock_meta.testing``'s
``LoopbackServer``: its socket lacks ``TCP_NODELAY``, see ``bound_socket``.) Two thin ASGI
wrappers are test harness, not stubs: ``WebhookSwitch`` sits in front of the bot (answers
500 while ``failing``, holds webhooks at a gate, notes arrival order) and ``GraphTap`` in
front of the mock (keeps the headers of every Graph call, which the mock's journal does not
store).

>>> async def test_reply(pair: BotMockPair) -> None:  # doctest: +SKIP
...     action = await pair.mock.user(PSID).send_text("hi")
...     reply = await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.settings import BotSettings
from mock_meta.client import MockMetaClient
from mock_meta.settings import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PAGE_ID,
    DEFAULT_PAGE_TOKEN,
    DEFAULT_PSID,
    DEFAULT_VERIFY_TOKEN,
)
from tests.polling import eventually

APP_ID = DEFAULT_APP_ID
APP_SECRET = DEFAULT_APP_SECRET
VERIFY_TOKEN = DEFAULT_VERIFY_TOKEN
PAGE_ID = DEFAULT_PAGE_ID
PAGE_TOKEN = DEFAULT_PAGE_TOKEN
PSID = DEFAULT_PSID
STARTUP_TIMEOUT_SECONDS = 10.0
_WEBHOOK_POST = ("POST", "/webhook")

T = TypeVar("T")


class WebhookSwitch:
    """In front of the bot: while ``failing`` every ``POST /webhook`` gets a 500 without reaching
    the bot; ``hold()`` parks webhook POSTs until ``release()``. ``arrivals`` lists the bodies
    that reached the bot, in order."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failing = False
        self.refused = 0
        self.arrivals: list[dict[str, Any]] = []
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def arrived_mids(self, psid: str) -> list[str]:
        """Mids of the user's own messages (not echoes) in the order they reached the bot."""
        mids = []
        for body in self.arrivals:
            for entry in body.get("entry", []):
                for event in entry.get("messaging", []):
                    message = event.get("message") or {}
                    if event.get("sender", {}).get("id") == psid and "mid" in message:
                        if not message.get("is_echo"):
                            mids.append(message["mid"])
        return mids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and (scope["method"], scope["path"]) == _WEBHOOK_POST):
            await self.app(scope, receive, send)
            return
        await self._gate.wait()
        if self.failing:
            self.refused += 1
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        messages = await _drain(receive)
        body = b"".join(m.get("body", b"") for m in messages)
        with contextlib.suppress(ValueError):
            self.arrivals.append(json.loads(body))
        replay = iter(messages)

        async def replayed() -> Message:
            # The drained body first, then whatever the server says next (a disconnect).
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


@dataclass
class GraphRequest:
    method: str
    path: str
    headers: dict[str, str]


class GraphTap:
    """In front of the mock: remembers method, path and headers of every Graph request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls: list[GraphRequest] = []

    def send_api_calls(self) -> list[GraphRequest]:
        return [c for c in self.calls if c.method == "POST" and c.path.endswith("/messages")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_mock/"):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.calls.append(GraphRequest(scope["method"], scope["path"], headers))
        await self.app(scope, receive, send)


@dataclass
class BotMockPair:
    """A running bot and mock that know each other; see the module docstring."""

    mock: MockMetaClient
    mock_url: str
    graph: GraphTap
    bot_url: str
    bot_settings: BotSettings
    registry: CollectorRegistry
    spans: InMemorySpanExporter
    switch: WebhookSwitch

    def metric(self, name: str, **labels: str) -> float:
        """A bot metric's current value (0 when the series does not exist yet)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def metric_sum(self, name: str, **labels: str) -> float:
        """The sum of a bot metric over every series whose labels include ``labels``."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    async def wait_metric(
        self, name: str, at_least: float, *, within: float = 10.0, **labels: str
    ) -> float:
        """Wait until a bot metric reaches ``at_least``; returns its value."""
        return await eventually(
            lambda: (v := self.metric(name, **labels)) >= at_least and v,
            within=within,
            what=f"{name}{labels} >= {at_least}",
        )


StartPair = Callable[..., Awaitable[BotMockPair]]
"""The ``start_pair`` fixture's type: ``await start_pair(router=..., mock_clock=..., ...)``."""


async def _drain(receive: Receive) -> list[Message]:
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


@contextlib.asynccontextmanager
async def serve_on(app: ASGIApp, sock: socket.socket) -> AsyncIterator[None]:
    """Serve ``app`` with uvicorn on an already bound socket until the block exits."""
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if task.done():
            await task  # re-raises the startup failure
            raise RuntimeError("server exited during startup")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start in time")
        await asyncio.sleep(0.005)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def bound_socket() -> socket.socket:
    """A 127.0.0.1 socket on a port the OS picks, not listening yet (uvicorn does that).

    Created with ``IPPROTO_TCP`` explicitly: asyncio sets ``TCP_NODELAY`` only on sockets whose
    ``proto`` says TCP, and without it every loopback request stalls ~40 ms (Nagle + delayed
    ACK). ``socket.socket(AF_INET, SOCK_STREAM)`` alone has ``proto == 0``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
