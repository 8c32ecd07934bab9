"""A small HTTP/1.1 client for webhook POSTs: keep-alive connections, exact bytes, O(1) pooling.

Why not httpx here: with dozens of webhooks in flight, httpcore re-examines every pooled
connection for every request (``_assign_requests_to_connections`` → ``is_socket_readable``),
which took most of the mock's CPU under load. A webhook POST needs little: write known bytes,
read the status line, skip the body, keep the connection for the next POST. The delivery
engine uses this client unless a caller injects an ``httpx.AsyncClient`` (tests do, with a
``MockTransport``). Timeouts are the caller's (``asyncio.timeout``); a cancelled request closes
its connection, so a late answer can never be read as the next request's.

>>> client = WebhookHttpClient()
>>> headers = {"Content-Type": "application/json"}
>>> await client.post("http://127.0.0.1:8000/webhook", b"{}", headers)  # doctest: +SKIP
200
>>> await client.aclose()                                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
_Origin = tuple[str, str, int]  # (scheme, host, port)

# Response reader states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _UNTIL_CLOSE, _DONE = range(7)


class WebhookConnectionError(Exception):
    """No usable answer: refused, reset, closed early, malformed response or unusable URL."""


class _ClosedUnanswered(WebhookConnectionError):
    """The connection closed before a single byte of the answer came back."""


@dataclass(frozen=True, slots=True)
class _Target:
    origin: _Origin
    request_prefix: bytes  # "POST /path HTTP/1.1\r\nHost: ...\r\n"


class _Response:
    """Incremental HTTP/1.1 response reader: the status, whether the connection stays open,
    and the body skipped (a webhook's answer body is never used)."""

    __slots__ = ("answered", "buf", "keep_alive", "remaining", "state", "status")

    def __init__(self) -> None:
        self.answered = False  # any byte of the answer arrived
        self.buf = bytearray()
        self.state = _HEAD
        self.status = 0
        self.keep_alive = True
        self.remaining = 0

    def feed(self, data: bytes) -> bool:
        """Consume ``data``; True once the response is complete."""
        self.answered = True
        buf = self.buf
        buf += data
        while True:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise WebhookConnectionError("response head too large")
                    return False
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._parse_head(head)
            elif state in (_LENGTH, _CHUNK_DATA):
                take = min(self.remaining, len(buf))
                del buf[:take]
                self.remaining -= take
                if self.remaining:
                    return False
                self.state = _DONE if state == _LENGTH else _CHUNK_SIZE
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise WebhookConnectionError("malformed chunked body")
                    return False
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise WebhookConnectionError("malformed chunked body") from None
                if size < 0:
                    raise WebhookConnectionError("malformed chunked body")
                if size == 0:
                    self.state = _TRAILERS
                else:
                    self.remaining = size + 2  # the chunk and its CRLF
                    self.state = _CHUNK_DATA
            elif state == _TRAILERS:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise WebhookConnectionError("response trailers too large")
                    return False
                empty = end == 0
                del buf[: end + 2]
                if empty:
                    self.state = _DONE
            elif state == _UNTIL_CLOSE:
                buf.clear()
                return False
            else:  # _DONE
                if buf:  # bytes nobody asked for: never reuse this connection
                    self.keep_alive = False
                    buf.clear()
                return True

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise WebhookConnectionError("malformed response status line")
        status = int(parts[1])
        if 100 <= status < 200:
            if status == 101:
                raise WebhookConnectionError("unexpected protocol switch")
            return  # informational (e.g. 100 Continue): the real answer follows
        self.status = status
        length: int | None = None
        chunked = False
        connection = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name = name.strip().lower()
            if name == b"content-length":
                text = value.strip()
                if not text.isdigit() or (length is not None and int(text) != length):
                    raise WebhookConnectionError("malformed Content-Length")
                length = int(text)
            elif name == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                connection += b"," + value.strip().lower()
        if parts[0] == b"HTTP/1.0":
            self.keep_alive = b"keep-alive" in connection
        elif b"close" in connection:
            self.keep_alive = False
        if status in (204, 304):
            self.state = _DONE
        elif chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            self.remaining = length
            self.state = _LENGTH if length else _DONE
        else:
            self.keep_alive = False
            self.state = _UNTIL_CLOSE


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._response: _Response | None = None
        self._waiter: asyncio.Future[_Response] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self._response
        if response is None:  # unsolicited bytes: the connection can no longer be trusted
            self.close()
            return
        try:
            done = response.feed(data)
        except WebhookConnectionError as exc:
            self._settle(exc)
            self.close()
            return
        if done:
            self._settle(response)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost settles any waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is None:
            return
        detail = f": {exc}" if exc else ""
        if response.state == _UNTIL_CLOSE:
            self._settle(response)
        elif not response.answered:
            self._settle(_ClosedUnanswered(f"connection closed before a response{detail}"))
        else:
            self._settle(
                WebhookConnectionError(f"connection closed before a complete response{detail}")
            )

    async def request(self, data: bytes) -> _Response:
        if self.closed or self.transport is None:
            raise WebhookConnectionError("connection closed before the request")
        self._response = _Response()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _settle(self, outcome: _Response | Exception) -> None:
        waiter, self._waiter, self._response = self._waiter, None, None
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


class WebhookHttpClient:
    """POSTs over pooled keep-alive connections, one request per connection at a time.

    Connections are opened on demand, so as many run at once as the caller keeps requests in
    flight (the engine bounds that); up to ``max_idle_per_origin`` idle ones are kept.
    """

    def __init__(self, *, max_idle_per_origin: int = 256) -> None:
        self._max_idle = max_idle_per_origin
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._busy: set[_Connection] = set()
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Send ``body`` exactly as given; returns the answer's status code.

        Raises :class:`WebhookConnectionError` when no complete answer came back.
        """
        target = self._target(url)
        data = target.request_prefix + _header_block(headers, len(body)) + body
        conn = self._checkout(target.origin)
        if conn is not None:
            try:
                return await self._exchange(target.origin, conn, data)
            except _ClosedUnanswered:
                # The server closed this idle keep-alive connection as we reused it (its close
                # had not reached us yet); it never answered, so send once more on a new one.
                pass
        conn = await self._connect(target.origin)
        return await self._exchange(target.origin, conn, data)

    async def _exchange(self, origin: _Origin, conn: _Connection, data: bytes) -> int:
        self._busy.add(conn)
        reusable = False
        try:
            response = await conn.request(data)
            reusable = response.keep_alive
        finally:
            self._busy.discard(conn)
            if reusable and not conn.closed:
                self._checkin(origin, conn)
            else:  # failed, cancelled (timeout) or told to close: never reuse it
                conn.close()
        return response.status

    async def aclose(self) -> None:
        """Close every connection (requests still in flight fail)."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _parse_target(url)
            if len(self._targets) >= 1024:  # callback URLs are few; never grow without bound
                self._targets.clear()
            self._targets[url] = target
        return target

    def _checkout(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # most recently used first: the warmest connection
            if not conn.closed:
                return conn
        return None

    def _checkin(self, origin: _Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            conn.close()
        else:
            idle.append(conn)

    async def _connect(self, origin: _Origin) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, host, port, ssl=context)
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise WebhookConnectionError(f"{type(exc).__name__}: {exc}") from exc
        return conn


def _parse_target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookConnectionError(f"invalid URL: {exc}") from None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        raise WebhookConnectionError("unsupported URL: the callback must be http(s)://host/...")
    default = 443 if scheme == "https" else 80
    port = port or default
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_text = f"[{host}]" if ":" in host else host
    host_header = host_text if port == default else f"{host_text}:{port}"
    prefix = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n"
    if not prefix.isascii() or any(c in path + host_header for c in "\r\n \t"):
        raise WebhookConnectionError("unsupported URL: characters HTTP/1.1 cannot carry")
    return _Target((scheme, host, port), prefix.encode("ascii"))


def _header_block(headers: Mapping[str, str], length: int) -> bytes:
    """The header lines after Host; ``headers`` must not carry Host or Content-Length."""
    lines = []
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError("header names and values must not contain CR or LF")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "".join(lines).encode("latin-1")
