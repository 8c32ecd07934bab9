"""Fixtures for the mock platform's tests: a real loopback webhook receiver and the engine.

``receiver`` is a Starlette app under uvicorn on a pre-bound 127.0.0.1 port. It keeps the raw
bytes and headers of every POST and recomputes both signatures from those bytes, so a test
sees exactly what a bot would. Its answers are scriptable (statuses, hangs, latency), and
``await receiver.wait_for(n)`` wakes on arrival instead of polling.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mock_meta.chaos import Chaos, ChaosConfig
from mock_meta.clock import ControllableClock
from mock_meta.delivery import DeliveryEngine
from mock_meta.journal import Journal
from mock_meta.metrics import MockMetrics
from mock_meta.retry_profile import RetryProfile
from tests import polling

SECRET = "test_app_secret"
APP_ID = "1234567890123456"
PAGE_ID = "104501234567890"
PSID = "6543210987654321"
START = 1_767_225_600.0


@dataclass(frozen=True)
class Received:
    """One webhook POST as the receiver saw it."""

    body: bytes
    headers: dict[str, str]
    sha256_valid: bool
    sha1_valid: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [
            event
            for entry in self.json["entry"]
            for event in entry.get("messaging", []) + entry.get("standby", [])
        ]

    @property
    def mids(self) -> list[str | None]:
        return [(e.get("message") or {}).get("mid") for e in self.events]


@dataclass
class Receiver:
    """A scriptable webhook endpoint; ``url`` is its POST target."""

    secret: str = SECRET
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Statuses for the next POSTs (then ``default_status``); "hang" never answers.
    script: deque[int | str] = field(default_factory=deque)
    default_status: int = 200
    latency: float = 0.0
    max_concurrent_per_psid: int = 0
    _in_flight: dict[str, int] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def respond(self, *answers: int | str) -> None:
        self.script.extend(answers)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:  # noqa: ASYNC109
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return list(self.received)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        got = Received(body, headers, *self._check(body, headers))
        psids = {str((e.get("sender") or {}).get("id")) for e in _events_or_empty(body)}
        for psid in psids:
            self._in_flight[psid] = self._in_flight.get(psid, 0) + 1
            self.max_concurrent_per_psid = max(self.max_concurrent_per_psid, self._in_flight[psid])
        async with self._arrived:
            self.received.append(got)
            self._arrived.notify_all()
        answer = self.script.popleft() if self.script else self.default_status
        try:
            if answer == "hang":
                await self._release.wait()
                return Response(status_code=504)
            if self.latency:
                await asyncio.sleep(self.latency)  # the receiver's own slowness, not a test wait
            return PlainTextResponse("EVENT_RECEIVED", status_code=int(answer))
        finally:
            for psid in psids:
                self._in_flight[psid] -= 1

    def _check(self, body: bytes, headers: dict[str, str]) -> tuple[bool, bool]:
        key = self.secret.encode()
        sha256 = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        sha1 = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
        return (
            hmac.compare_digest(headers.get("x-hub-signature-256", ""), sha256),
            hmac.compare_digest(headers.get("x-hub-signature", ""), sha1),
        )


def _events_or_empty(body: bytes) -> list[dict[str, Any]]:
    try:
        return [e for entry in json.loads(body)["entry"] for e in entry.get("messaging", [])]
    except (ValueError, KeyError, TypeError):
        return []


async def _serve(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it Nagle + delayed ACKs add ~40 ms to every loopback POST.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 5
    while not server.started:  # uvicorn exposes no event; bounded poll with a deadline
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("receiver did not start")
        await asyncio.sleep(0.005)
    return server, task, sock.getsockname()[1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def verify(request: Request) -> Response:
        params = request.query_params
        if params.get("hub.mode") == "subscribe" and params.get("hub.verify_token") == "tok":
            return PlainTextResponse(params.get("hub.challenge", ""))
        return PlainTextResponse("forbidden", status_code=403)

    app = Starlette(
        routes=[
            Route("/webhook", rec.handle, methods=["POST"]),
            Route("/webhook", verify, methods=["GET"]),
        ]
    )
    server, task, port = await _serve(app)
    rec.url = f"http://127.0.0.1:{port}/webhook"
    try:
        yield rec
    finally:
        rec._release.set()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Starlette], Awaitable[str]]]:
    """Serve any Starlette app on loopback; returns its base URL (for handshake tests)."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: Starlette) -> str:
        server, task, port = await _serve(app)
        running.append((server, task))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in running:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/webhook"


class FakeSubscriptions:
    """The ``Subscriptions`` protocol over a set: everything subscribed until disabled."""

    def __init__(self, unsubscribed_fields: set[str] | None = None) -> None:
        self.unsubscribed_fields = unsubscribed_fields or set()
        self.disabled: dict[tuple[str, str], str] = {}

    def is_delivering(self, app_id: str, page_id: str, field: str) -> bool:
        return (app_id, page_id) not in self.disabled and field not in self.unsubscribed_fields

    def disable(self, app_id: str, page_id: str, reason: str) -> None:
        self.disabled[(app_id, page_id)] = reason

    def resubscribe(self, app_id: str, page_id: str) -> None:
        self.disabled.pop((app_id, page_id), None)


@pytest.fixture
def clock() -> ControllableClock:
    return ControllableClock(start=START, frozen=True)


@pytest.fixture
def metrics() -> MockMetrics:
    return MockMetrics(CollectorRegistry())


@pytest.fixture
def journal(clock: ControllableClock, metrics: MockMetrics) -> Journal:
    return Journal(clock, metrics)


@pytest.fixture
def subscriptions() -> FakeSubscriptions:
    return FakeSubscriptions()


EngineFactory = Callable[..., Awaitable[DeliveryEngine]]


@pytest.fixture
async def make_engine(
    clock: ControllableClock,
    journal: Journal,
    metrics: MockMetrics,
    subscriptions: FakeSubscriptions,
) -> AsyncIterator[EngineFactory]:
    """``await make_engine(profile=..., chaos=ChaosConfig(...))`` → a started engine."""
    engines: list[DeliveryEngine] = []

    async def build(
        *, profile: RetryProfile | None = None, chaos: ChaosConfig | None = None, **kwargs: Any
    ) -> DeliveryEngine:
        engine = DeliveryEngine(
            clock=clock,
            journal=journal,
            metrics=metrics,
            profile=profile or RetryProfile(),
            chaos=Chaos(chaos or ChaosConfig(seed=1)),
            subscriptions=subscriptions,
            **kwargs,
        )
        await engine.start()
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        await engine.stop()


async def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll ``predicate`` until true, failing after ``timeout`` real seconds."""
    await polling.eventually(predicate, within=timeout, interval=0.002)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(lambda: cond)``: a bounded poll for conditions with no event."""
    return _eventually
