"""Run a real mock_meta server in-process on a loopback port (uvicorn on a pre-bound socket).

>>> async with MockMetaServer(MockSettings(callback_url=bot_url)) as server:  # doctest: +SKIP
...     async with MockMetaClient(server.base_url) as mock:
...         await mock.user("6543210987654321").send_text("hi")

Each server has its own app, state, journal, clock and metrics registry, so parallel tests
(and xdist workers) never share anything. ``EchoBot`` is a deliberately naive bot (no dedup,
no retries) for tests of the harness itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mock_meta.app import create_app
from mock_meta.client import MockMetaClient
from mock_meta.clock import ControllableClock
from mock_meta.runtime import MockRuntime
from mock_meta.settings import DEFAULT_APP_SECRET, DEFAULT_PAGE_TOKEN, MockSettings

STARTUP_TIMEOUT_SECONDS = 10.0


class LoopbackServer:
    """Any ASGI app served by uvicorn on a pre-bound 127.0.0.1 socket (port chosen by the OS).

    Handy for a bot-like receiver in tests: ``async with LoopbackServer(app) as srv: srv.url``.
    """

    def __init__(self, app: Any, *, port: int = 0, **uvicorn_options: Any) -> None:
        """``port=0`` lets the OS choose; a fixed port is for tools others must find.
        ``uvicorn_options`` go to ``uvicorn.Config`` (``http=``, ``lifespan=``...)."""
        self.app = app
        self._options = {"lifespan": "on", "log_level": "warning", **uvicorn_options}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says
        # TCP, and without it Nagle + delayed ACK add ~40 ms to every small response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, access_log=False, **self._options)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise the startup failure
                raise RuntimeError("server exited during startup")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("server did not start in time")
            await asyncio.sleep(0.005)

    @property
    def server(self) -> uvicorn.Server:
        """The running uvicorn server (its ``server_state`` holds the open connections)."""
        assert self._server is not None, "not started"
        return self._server

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class MockMetaServer(LoopbackServer):
    """A whole mock platform on a loopback port; ``runtime`` exposes its internals."""

    def __init__(
        self,
        settings: MockSettings | None = None,
        *,
        clock: ControllableClock | None = None,
        registry: CollectorRegistry | None = None,
        port: int = 0,
    ) -> None:
        self.settings = settings or MockSettings()
        self.registry = registry if registry is not None else CollectorRegistry()
        app = create_app(self.settings, clock=clock, registry=self.registry)
        super().__init__(app, port=port)

    @property
    def runtime(self) -> MockRuntime:
        """The live collaborators (state, journal, clock…) for white-box assertions."""
        runtime: MockRuntime = self.app.state.runtime
        return runtime


@dataclass
class EchoBot:
    """A naive bot: checks the signature, acks, then answers every text via the Send API.

    It answers redelivered events again (no dedup) and never retries a failed send, like many
    first bots. ``silent`` stops replies; ``down`` answers 503 to every POST (an outage).

    >>> bot = EchoBot(graph_url=mock_server.base_url)  # where it sends replies  # doctest: +SKIP
    >>> async with LoopbackServer(bot.app()) as bot_server:                # doctest: +SKIP
    ...     callback_url = f"{bot_server.base_url}/webhook"

    ``echo_bot_world()`` wires one to a ``MockMetaServer``. In memory (``ASGITransport``): it
    echoes the handshake's challenge and, while ``down``, fails every POST.

    >>> async def handshake_then_post(bot: EchoBot) -> tuple[str, int]:
    ...     transport = httpx.ASGITransport(bot.app())
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
    ...         get = await client.get("/webhook", params={"hub.challenge": "1234567890"})
    ...         post = await client.post("/webhook", content=b"{}")
    ...     return get.text, post.status_code
    >>> asyncio.run(handshake_then_post(EchoBot(down=True)))
    ('1234567890', 503)
    """

    graph_url: str = ""
    secret: str = DEFAULT_APP_SECRET
    page_token: str = DEFAULT_PAGE_TOKEN
    silent: bool = False
    down: bool = False
    bad_signatures: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhook", self.webhook, methods=["GET", "POST"])])

    async def webhook(self, request: Request) -> PlainTextResponse:
        if request.method == "GET":
            return PlainTextResponse(request.query_params.get("hub.challenge", ""))
        if self.down:
            return PlainTextResponse("down", status_code=503)
        raw = await request.body()
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-hub-signature-256", ""), expected):
            self.bad_signatures += 1
            return PlainTextResponse("bad signature", status_code=403)
        body = json.loads(raw)
        for entry in body["entry"]:
            for event in entry.get("messaging", []):
                self.received.append(event)
                message = event.get("message", {})
                if "text" in message and not message.get("is_echo") and not self.silent:
                    task = asyncio.create_task(self.answer(event["sender"]["id"], message["text"]))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        return PlainTextResponse("EVENT_RECEIVED")

    async def answer(self, psid: str, text: str) -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.post(
                f"{self.graph_url}/v25.0/me/messages",
                params={"access_token": self.page_token},
                json={
                    "recipient": {"id": psid},
                    "messaging_type": "RESPONSE",
                    "message": {"text": f"echo: {text}"},
                },
            )

    async def settle(self) -> None:
        """Wait for the replies already started."""
        await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass
class EchoBotWorld:
    """An ``EchoBot`` wired to a ``MockMetaServer`` (the seeded app calls the bot)."""

    bot: EchoBot
    server: MockMetaServer
    mock: MockMetaClient


@contextlib.asynccontextmanager
async def echo_bot_world(**settings: Any) -> AsyncIterator[EchoBotWorld]:
    """``async with echo_bot_world() as world:`` a naive bot and a mock on loopback;
    ``settings`` are ``MockSettings`` overrides. Replies in progress finish before exit."""
    bot = EchoBot()
    async with LoopbackServer(bot.app()) as bot_server:
        callback = f"{bot_server.base_url}/webhook"
        async with MockMetaServer(MockSettings(callback_url=callback, **settings)) as server:
            bot.graph_url = server.base_url
            async with MockMetaClient(server.base_url) as mock:
                yield EchoBotWorld(bot, server, mock)
                await bot.settle()
