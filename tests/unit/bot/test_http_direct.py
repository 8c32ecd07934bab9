"""A whole webhook POST served without the parser (``bot.http_direct`` in ``bot.http_guard``).

The app must not be able to tell the two paths apart, and the connection must behave as with
the parser: answers in order, keep-alive, a 500 when the app fails, a graceful shutdown that
still delivers the answer in progress. The server runs in-process on loopback with an app
that holds each answer until the test releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop

from bot.http_direct import DirectExchange, parse_head
from bot.http_guard import EdgeLimits, GuardedHttpToolsProtocol, guarded_protocol
from mock_meta.testing import LoopbackServer
from tests.polling import eventually


def post(body: bytes, *headers: bytes, target: bytes = b"/webhook") -> bytes:
    fields = [b"Host: bot", b"X-Hub-Signature-256: sha256=00", *headers]
    fields.append(b"Content-Length: %d" % len(body))
    return b"POST " + target + b" HTTP/1.1\r\n" + b"\r\n".join(fields) + b"\r\n\r\n" + body


class HeldApp:
    """Answers each POST with the body it got, once ``release`` is set; ``b"boom"`` raises."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived: asyncio.Queue[bytes] = asyncio.Queue()
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        self.scopes.append(scope)
        await self.arrived.put(body)
        await self.release.wait()
        if body == b"boom":
            raise RuntimeError("boom")
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Client:
    """One loopback connection, in the test's own event loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[bytes, bytes], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head[:-4].split(b"\r\n")
        fields = dict(line.lower().split(b": ", 1) for line in lines[1:])
        body = await self.reader.readexactly(int(fields[b"content-length"]))
        return int(lines[0].split()[1]), fields, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""


@contextlib.asynccontextmanager
async def serve(limits: EdgeLimits) -> AsyncIterator[tuple[HeldApp, LoopbackServer]]:
    app = HeldApp()
    protocol = guarded_protocol(limits, direct=True)
    async with LoopbackServer(app, http=protocol, lifespan="off") as server:
        yield app, server


Scenario = Callable[[HeldApp, LoopbackServer], Awaitable[None]]


def on_uvloop(scenario: Scenario, limits: EdgeLimits | None = None) -> None:
    """Run ``scenario`` against a fresh server on uvloop's event loop, as ``messenger-bot
    serve`` runs (its transports differ from asyncio's: a write after close raises)."""

    async def main() -> None:
        async with serve(limits or EdgeLimits()) as (app, server):
            await scenario(app, server)

    uvloop.run(main())


async def held_at_the_app(app: HeldApp, client: Client, body: bytes) -> None:
    """Send a whole POST and wait until the app holds it."""
    await client.send(post(body))
    assert await asyncio.wait_for(app.arrived.get(), 5) == body


async def shutting_down(server: LoopbackServer) -> asyncio.Task[None]:
    """Start a graceful stop; returns once every connection was asked to shut down."""
    stopping = asyncio.create_task(server.stop())
    # uvicorn stops listening, then asks every connection to shut down, in one step.
    await eventually(lambda: not any(s.is_serving() for s in server.server.servers), within=5)
    return stopping


async def connect(server: LoopbackServer) -> Client:
    return Client(*await asyncio.open_connection("127.0.0.1", server.port))


def test_the_app_gets_the_same_request_with_or_without_the_parser() -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        app.release.set()
        client = await connect(server)
        request = post(b'{"object":"page"}', b"Traceparent: 00-ab-cd-01", target=b"/webhook?x=1")
        await client.send(request)  # one whole read: no parser
        direct = await client.answer()
        await client.send(request[:20])  # two reads: the parser
        await eventually(lambda: len(app.scopes) == 1 and _reading(server), within=5)
        await client.send(request[20:])
        parsed = await client.answer()

        status, fields, body = direct
        assert fields.keys() == parsed[1].keys()  # the date's value may have moved on
        assert (status, body) == (parsed[0], parsed[2])
        assert (status, body) == (200, b'{"object":"page"}')
        assert b"date" in fields and b"connection" not in fields  # kept open
        keys = ("method", "path", "raw_path", "query_string", "headers", "http_version", "type")
        assert [{k: s[k] for k in keys} for s in app.scopes] == [
            {
                "type": "http",
                "http_version": "1.1",
                "method": "POST",
                "path": "/webhook",
                "raw_path": b"/webhook",
                "query_string": b"x=1",
                "headers": [
                    (b"host", b"bot"),
                    (b"x-hub-signature-256", b"sha256=00"),
                    (b"traceparent", b"00-ab-cd-01"),
                    (b"content-length", b"17"),
                ],
            }
        ] * 2

    on_uvloop(scenario)


def test_a_body_that_comes_in_later_reads_is_served_whole() -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        app.release.set()
        client = await connect(server)
        request = post(b'{"object":"page","entry":[]}', b"Connection: keep-alive")
        await client.send(request[:-10])  # how httpx writes: the head, then the body
        await eventually(lambda: any(c._partial for c in _connections(server)), within=5)
        assert not app.scopes
        await client.send(request[-10:-4])
        await client.send(request[-4:])

        status, _, body = await client.answer()
        assert (status, body) == (200, b'{"object":"page","entry":[]}')
        assert [scope["headers"][-2:] for scope in app.scopes] == [
            [(b"connection", b"keep-alive"), (b"content-length", b"28")]
        ]

    on_uvloop(scenario)


def test_a_body_that_stops_coming_gets_a_408_and_a_close() -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        client = await connect(server)
        await client.send(post(b"never all of it")[:-3])
        status, fields, _ = await client.answer()
        assert (status, fields[b"connection"]) == (408, b"close")
        assert await client.closed()
        assert not app.scopes

    on_uvloop(scenario, EdgeLimits(body_timeout=0.2))


def test_a_request_sent_before_the_answer_waits_for_it() -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        client = await connect(server)
        await held_at_the_app(app, client, b"first")
        await client.send(post(b"second"))  # before the first answer: held, not parsed
        await eventually(lambda: any(c._held for c in _connections(server)), within=5)
        assert app.arrived.empty()
        app.release.set()

        assert [(await client.answer())[2] for _ in range(2)] == [b"first", b"second"]

    on_uvloop(scenario)


def test_a_client_gone_before_its_answer_costs_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        leaving = await connect(server)
        await held_at_the_app(app, leaving, b"left")
        leaving.writer.close()
        await eventually(lambda: not _connections(server), within=5)
        with caplog.at_level(logging.WARNING):
            app.release.set()
            client = await connect(server)
            await client.send(post(b"next"))
            assert (await client.answer())[2] == b"next"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    on_uvloop(scenario)


def test_an_app_that_fails_gets_a_500_and_the_connection_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        app.release.set()
        client = await connect(server)
        with caplog.at_level(logging.ERROR):
            await client.send(post(b"boom"))
            status, fields, _ = await client.answer()
        assert (status, fields[b"connection"]) == (500, b"close")
        assert await client.closed()
        assert "exception in the ASGI app" in caplog.text

    on_uvloop(scenario)


def test_shutdown_delivers_the_answer_in_progress_then_closes() -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        client = await connect(server)
        await held_at_the_app(app, client, b"in flight")
        stopping = await shutting_down(server)
        app.release.set()

        assert (await client.answer())[2] == b"in flight"
        assert await client.closed()
        await asyncio.wait_for(stopping, 10)

    on_uvloop(scenario)


def test_shutdown_waits_for_a_body_still_coming_then_answers_and_closes() -> None:
    async def scenario(app: HeldApp, server: LoopbackServer) -> None:
        app.release.set()
        client = await connect(server)
        request = post(b"the rest comes later")
        await client.send(request[:-5])
        await eventually(lambda: any(c._partial for c in _connections(server)), within=5)
        stopping = await shutting_down(server)
        await client.send(request[-5:])

        assert (await client.answer())[2] == b"the rest comes later"
        assert await client.closed()
        await asyncio.wait_for(stopping, 10)

    on_uvloop(scenario)


def test_a_head_with_a_bad_line_is_left_to_the_parser() -> None:
    good = b"POST /webhook HTTP/1.1\r\nHost: a"
    assert parse_head(good) == (b"", [(b"host", b"a")])
    for bad in (b"\r\nBad Name: x", b"\r\nno-colon", b"\r\n: empty", b"\r\nA\t: x"):
        assert parse_head(good + bad) is None, bad


# Hostile and unusual heads, each sent whole (the shorter way's case) to a server that takes
# it and to one that always parses. Request lines, then header lines, each combined with all.
_REQUEST_LINES = (
    b"POST /webhook HTTP/1.1",
    b"POST /webhook?x=%20&y HTTP/1.1",
    b"POST /webhook? HTTP/1.1",
    b"POST /webhook http/1.1",
    b"POST /webhook HTTP/1.0",
    b"POST /webhook  HTTP/1.1",
    b"POST /webhook?a b HTTP/1.1",
    b"POST /webhook?a\tb HTTP/1.1",
    b"POST /webhook?x=\x01 HTTP/1.1",
    b"POST /webhook?x=\x7f HTTP/1.1",
    b"POST /webhook?x=\x80 HTTP/1.1",
    b"POST /webhook?x=1#frag HTTP/1.1",
    b"POST /webhook HTTP/1.1\t",
)
_HEADER_LINES = (
    b"",
    b"X-A: \x01b",
    b"X-A: a\x7f",
    b"X-A: \x00",
    b"X-A: a\rb",
    b"X-A: a\nb",
    b"X-A: \x80\xff",
    b"X-A: a\tb",
    b"X-A:\tv\t",
    b"X-A:  v  ",
    b"X-A:",
    b"X A: v",
    b"X-A : v",
    b" X-A: v",
    b"X-A: v\r\n folded",
    b"Connection: Keep-Alive ",
    b"Connection: keep-alive, close",
    b"Transfer-Encoding : chunked",
    b"Content-Length: 17",
    b"content-length: 0017",
)


class RecordingApp:
    """Answers every POST at once and keeps what it was handed."""

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = (await receive())["body"]
        keys = ("method", "path", "raw_path", "query_string", "http_version", "headers")
        self.requests.append((*(scope[k] for k in keys), body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _status_line(server: LoopbackServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def test_the_shorter_way_answers_every_head_as_the_parser_does() -> None:
    """Same status, and the app handed the same request or none: what the parser refuses
    (a control byte, a lower-case version, a space in the target...) never reaches the app
    by the shorter way, and what it takes looks the same (trailing blanks as uvicorn keeps them)."""
    body = b'{"object":"page"}'
    requests = [
        b"\r\n".join([line, b"Host: bot", *([extra] if extra else []), b"Content-Length: 17"])
        + b"\r\n\r\n"
        + body
        for line in _REQUEST_LINES
        for extra in _HEADER_LINES
    ]

    async def main() -> None:
        direct_app, parser_app = RecordingApp(), RecordingApp()
        limits = EdgeLimits()
        direct = LoopbackServer(
            direct_app, http=guarded_protocol(limits, direct=True), lifespan="off"
        )
        parser = LoopbackServer(parser_app, http=guarded_protocol(limits), lifespan="off")
        statuses = set()
        async with direct, parser:
            for request in requests:
                answers = [await _status_line(s, request) for s in (direct, parser)]
                assert answers[0] == answers[1], request
                assert direct_app.requests == parser_app.requests, request
                direct_app.requests.clear()
                parser_app.requests.clear()
                statuses.add(answers[0].split(b" ")[1])
        assert statuses == {b"200", b"400"}  # the corpus has both kinds

    logging.getLogger("uvicorn.error").disabled = True  # 400s log "Invalid HTTP request"
    try:
        uvloop.run(main())
    finally:
        logging.getLogger("uvicorn.error").disabled = False


async def test_an_exchange_refuses_what_a_webhook_answer_never_is() -> None:
    written: list[tuple[bytes, bool]] = []
    exchange = DirectExchange(b"x", lambda data, close: written.append((data, close)), [])
    assert await exchange.receive() == {"type": "http.request", "body": b"x", "more_body": False}
    assert await exchange.receive() == {"type": "http.disconnect"}
    with pytest.raises(RuntimeError):
        await exchange.send({"type": "http.response.body", "body": b""})
    assert exchange.fail() is not None  # nothing sent yet: a 500 can still go out
    await exchange.send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-length", b"2"), (b"connection", b"close")],
        }
    )
    assert exchange.fail() is None
    await exchange.send({"type": "http.response.body", "body": b"{}"})
    head = b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-length: 2\r\nconnection: close"
    assert written == [(head + b"\r\n\r\n{}", True)]


def _connections(server: LoopbackServer) -> list[GuardedHttpToolsProtocol]:
    return [
        c for c in server.server.server_state.connections if isinstance(c, GuardedHttpToolsProtocol)
    ]


def _reading(server: LoopbackServer) -> bool:
    """The last answer is out and the connection waits for the next request."""
    return all(not c._direct_busy for c in _connections(server))
