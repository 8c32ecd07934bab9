"""The webhook HTTP/1.1 client against a scripted loopback server that sees the raw bytes."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from mock_meta.webhook_http import WebhookConnectionError, WebhookHttpClient

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nEVENT_RECEIVED"
CLOSE = b"<close>"
HEADERS = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=ab"}


@dataclass
class RawServer:
    """Answers each request on a connection with the next scripted bytes (None: never answer;
    b"": close without answering; a trailing ``CLOSE``: close after answering). Records every
    request's head and body."""

    url: str = ""
    answers: deque[bytes | None] = field(default_factory=deque)
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                self.arrived.set()
                answer = self.answers.popleft() if self.answers else OK
                if answer is None:
                    await reader.read()  # hold the request until the client gives up
                    return
                if not answer:
                    return
                writer.write(answer.removesuffix(CLOSE))
                await writer.drain()
                if answer.endswith(CLOSE):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    srv = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/webhook?x=1"
    try:
        yield raw
    finally:
        srv.close()


@pytest.fixture
async def client() -> AsyncIterator[WebhookHttpClient]:
    http = WebhookHttpClient()
    try:
        yield http
    finally:
        await http.aclose()


async def test_sends_the_exact_body_and_headers_and_reads_the_status(
    server: RawServer, client: WebhookHttpClient
) -> None:
    body = b'{"object":"page","text":"\\u00e4 https:\\/\\/x.io"}'
    assert await client.post(server.url, body, HEADERS) == 200
    [(head, got)] = server.requests
    assert got == body
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /webhook?x=1 HTTP/1.1"
    assert b"Host: 127.0.0.1:" + server.url.split(":")[2].split("/")[0].encode() in lines
    assert b"X-Hub-Signature-256: sha256=ab" in lines
    assert f"Content-Length: {len(body)}".encode() in lines


async def test_sequential_posts_reuse_one_keep_alive_connection(
    server: RawServer, client: WebhookHttpClient
) -> None:
    for _ in range(5):
        assert await client.post(server.url, b"{}", HEADERS) == 200
    assert server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno",
        b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n",
    ],
    ids=["chunked", "after-100-continue", "empty"],
)
async def test_reads_each_body_framing_and_keeps_the_connection(
    server: RawServer, client: WebhookHttpClient, answer: bytes
) -> None:
    server.answers.append(answer)
    assert await client.post(server.url, b"{}", HEADERS) == 500
    assert await client.post(server.url, b"{}", HEADERS) == 200
    assert server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 204 No Content\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_connection_the_server_closes_is_not_reused(
    server: RawServer, client: WebhookHttpClient, answer: bytes
) -> None:
    server.answers.append(answer)
    assert await client.post(server.url, b"{}", HEADERS) == 204
    assert await client.post(server.url, b"{}", HEADERS) == 200
    assert server.connections == 2


async def test_a_body_delimited_by_close_is_read_to_the_end(
    server: RawServer, client: WebhookHttpClient
) -> None:
    server.answers.append(b"HTTP/1.1 302 Found\r\n\r\nmoved" + CLOSE)
    assert await client.post(server.url, b"{}", HEADERS) == 302
    assert await client.post(server.url, b"{}", HEADERS) == 200
    assert server.connections == 2


async def test_connection_refused_is_a_connection_error(client: WebhookHttpClient) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(WebhookConnectionError, match="ConnectionRefusedError"):
        await client.post(f"http://127.0.0.1:{port}/webhook", b"{}", HEADERS)


async def test_closing_before_an_answer_is_a_connection_error(
    server: RawServer, client: WebhookHttpClient
) -> None:
    server.answers.append(b"")
    with pytest.raises(WebhookConnectionError, match="closed before a response"):
        await client.post(server.url, b"{}", HEADERS)


@pytest.mark.parametrize(
    "answer",
    [b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"],
    ids=["status-line", "content-length"],
)
async def test_a_malformed_answer_is_a_connection_error(
    server: RawServer, client: WebhookHttpClient, answer: bytes
) -> None:
    server.answers.append(answer)
    with pytest.raises(WebhookConnectionError, match="malformed"):
        await client.post(server.url, b"{}", HEADERS)


async def test_a_timed_out_request_never_lends_its_connection_to_the_next(
    server: RawServer, client: WebhookHttpClient
) -> None:
    server.answers.append(None)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.post(server.url, b'{"n":1}', HEADERS)
    assert await client.post(server.url, b'{"n":2}', HEADERS) == 200
    assert server.connections == 2
    assert [body for _, body in server.requests] == [b'{"n":1}', b'{"n":2}']


async def test_many_posts_in_flight_use_one_connection_each(
    server: RawServer, client: WebhookHttpClient
) -> None:
    statuses = await asyncio.gather(*(client.post(server.url, b"{}", HEADERS) for _ in range(20)))
    assert statuses == [200] * 20
    assert server.connections == 20
    for _ in range(20):  # all of them went back to the pool
        await client.post(server.url, b"{}", HEADERS)
    assert server.connections == 20


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/webhook", "not a url", "http:///nohost", "http://127.0.0.1:99999/x"],
)
async def test_an_unusable_url_is_a_connection_error(client: WebhookHttpClient, url: str) -> None:
    with pytest.raises(WebhookConnectionError):
        await client.post(url, b"{}", HEADERS)


async def test_header_injection_is_refused(server: RawServer, client: WebhookHttpClient) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        await client.post(server.url, b"{}", {"X-Evil": "a\r\nX-Injected: 1"})
    assert server.requests == []


async def test_a_keep_alive_connection_closed_unanswered_is_retried_once_on_a_new_one(
    server: RawServer, client: WebhookHttpClient
) -> None:
    # The server answers, then drops the connection without saying so (as an idle close
    # racing with the next request does): the next POST must still get through.
    server.answers.extend([OK, b""])
    assert await client.post(server.url, b'{"n":1}', HEADERS) == 200
    assert await client.post(server.url, b'{"n":2}', HEADERS) == 200
    assert server.connections == 2
    assert [body for _, body in server.requests] == [b'{"n":1}', b'{"n":2}', b'{"n":2}']


async def test_a_new_connection_closed_unanswered_is_not_retried(
    server: RawServer, client: WebhookHttpClient
) -> None:
    server.answers.extend([b"", b""])
    with pytest.raises(WebhookConnectionError):
        await client.post(server.url, b"{}", HEADERS)
    assert len(server.requests) == 1
