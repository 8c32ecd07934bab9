"""HttpSendApi over real loopback sockets, for each ``SEND_API_TRANSPORT``: a failure before
the request was written is retried, one after it is risky and never sent again."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from prometheus_client import CollectorRegistry

from bot.metrics import BotMetrics
from bot.retry import ErrorClass
from bot.send_api import HttpSendApi, SendResult
from bot.settings import BotSettings

PAGE, USER = "104501234567890", "6543210987654321"
Mode = Literal["ok", "reset", "hang", "malformed"]


class Graph:
    """A raw HTTP/1.1 server on 127.0.0.1:0 that reads each request whole, then misbehaves.

    In ``ok`` mode a plain call waits for ``gate`` (when set up) and a Graph batch is answered
    after ``batch_delay`` seconds, a part per call.
    """

    def __init__(self, mode: Mode, *, batch_delay: float = 0.0) -> None:
        self.mode = mode
        self.batch_delay = batch_delay
        self.gate: asyncio.Event | None = None
        self.requests: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self._hung: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> Graph:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._hung:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its idle connection
                return
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            request = json.loads(await reader.readexactly(length))
            self.requests.append(request)
            if self.mode == "reset":  # the whole request arrived; the answer never leaves
                writer.transport.abort()
                return
            if self.mode == "hang":
                self._hung.append(writer)
                return
            body = b"oops" if self.mode == "malformed" else await self._answer(request)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async def _answer(self, request: dict[str, Any]) -> bytes:
        if "batch" not in request:
            if self.gate is not None:
                await self.gate.wait()
            return b'{"message_id":"m_1"}'
        await asyncio.sleep(self.batch_delay)  # Graph working through the parts
        part = {"code": 200, "body": '{"message_id":"m_2"}'}
        return json.dumps([part] * len(request["batch"])).encode()


def closed_port() -> int:
    """A loopback port nothing listens on (connect is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def client(port: int, transport: str, **overrides: Any) -> HttpSendApi:
    """A client for Graph at 127.0.0.1:``port`` (``graph_api_base`` may override it)."""
    settings = BotSettings(
        verify_token="v",
        app_secret="s",
        page_access_token="tok",
        page_id=PAGE,
        send_transport=transport,
        send_backoff_base_seconds=0.001,
        send_backoff_max_seconds=0.002,
        **{
            "graph_api_base": f"http://127.0.0.1:{port}",
            "send_timeout_seconds": 5.0,
            **overrides,
        },
    )
    return HttpSendApi(settings, BotMetrics(CollectorRegistry()))


async def send(port: int, transport: str, **overrides: Any) -> SendResult:
    api = client(port, transport, **overrides)
    try:
        return await api.send(PAGE, USER, {"text": "hi"})
    finally:
        await api.aclose()


@pytest.fixture
async def graph(request: pytest.FixtureRequest) -> AsyncIterator[Graph]:
    async with Graph(request.param) as running:
        yield running


@pytest.mark.parametrize("graph", ["ok"], indirect=True)
async def test_a_call_is_delivered(graph: Graph, transport: str) -> None:
    result = await send(graph.port, transport)
    assert (result.ok, result.message_id) == (True, "m_1")
    assert graph.requests[0]["message"] == {"text": "hi"}


async def test_a_refused_connection_is_known_undelivered_and_retried(transport: str) -> None:
    result = await send(closed_port(), transport, send_max_attempts=2)
    assert (result.error_class, result.error_label, result.attempts) == (
        ErrorClass.TRANSIENT,
        "network",
        2,
    )


@pytest.mark.parametrize(
    ("graph", "label"),
    [("reset", "reset"), ("hang", "timeout"), ("malformed", "malformed")],
    indirect=["graph"],
)
async def test_a_request_whose_answer_is_lost_is_risky_and_sent_once(
    graph: Graph, label: str, transport: str
) -> None:
    # Generous for a loaded machine, short enough for the server that never answers.
    timeout = 0.5 if graph.mode == "hang" else 5.0
    result = await send(graph.port, transport, send_max_attempts=4, send_timeout_seconds=timeout)
    assert (result.error_class, result.error_label, result.attempts) == (
        ErrorClass.RISKY,
        label,
        1,
    )
    assert len(graph.requests) == 1


async def test_a_batch_may_take_longer_than_one_call_in_proportion_to_its_size(
    transport: str,
) -> None:
    # The batch answers after 1.5 s: past one call's 1 s budget, within 1 s + 4 x 1 s.
    async with Graph("ok", batch_delay=1.5) as graph:
        api = client(
            graph.port,
            transport,
            send_max_in_flight=1,
            send_timeout_seconds=1.0,
            send_batch_call_timeout_seconds=1.0,
        )
        try:
            # Made together, the four calls leave as one batch.
            results = await asyncio.gather(
                *(api.send(PAGE, f"u{i}", {"text": "hi"}) for i in range(4))
            )
        finally:
            await api.aclose()
    assert [(r.ok, r.attempts) for r in results] == [(True, 1)] * 4
    assert [len(r.get("batch", [None])) for r in graph.requests] == [4]


@pytest.mark.parametrize("graph", ["ok"], indirect=True)
async def test_graph_is_reached_through_the_proxy_the_environment_names(
    graph: Graph, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our server plays the egress proxy; the Graph host itself does not even resolve.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{graph.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    api = client(0, transport, graph_api_base="http://graph.invalid")
    try:
        result = await api.send(PAGE, USER, {"text": "via proxy"})
    finally:
        await api.aclose()
    assert result.ok
    assert graph.requests[0]["message"] == {"text": "via proxy"}
