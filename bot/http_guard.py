"""The limits uvicorn's httptools protocol lacks against hostile clients.

``guarded_protocol(limits)`` returns a subclass of uvicorn's ``HttpToolsProtocol`` to pass as
``uvicorn.Config(http=...)``. It adds:

* a cap on the request line plus headers (``431`` and close). The parser is never fed more than
  the cap: httptools accumulates a header by concatenation, so a 64 MiB header costs seconds;
* a header-read deadline, from the connection opening (or the next request's first byte) until
  the headers are complete, and a body-read deadline after that (``408`` and close). uvicorn
  only times out idle keep-alive connections, so a slowloris client would otherwise stay forever;
* a cap on open connections. At the cap a new connection evicts the least recently active one
  that has no request in progress (idle, or still trickling its headers), so slow clients cannot
  starve a real one of descriptors; when every connection is busy the new one is closed;
* lingering close: when the answer goes out before the request was read (a ``413``, a ``431``),
  the write side is shut and the rest of the request is discarded until the client closes or a
  short linger passes, so the client reads the answer instead of a connection reset.
* admission control: while ``bot.edge_admission``'s gate refuses, a ``POST /webhook`` is
  answered ``503`` with ``Retry-After`` from canned bytes as soon as its headers are in; its
  body is discarded unparsed, and the connection stays open for the next request (closed,
  after a linger, when the client asked to close or waits for ``100 Continue``). No ASGI
  task, no signature check, no JSON: refusing must cost far less than accepting;
* reads without the parser (``bot.http_direct``): a read that holds exactly one whole, plain
  keep-alive POST (the usual case, as Meta sends them) is refused without feeding the parser
  at all, whose per-header callbacks made the larger part of a refusal's cost; and, with
  ``direct=True``, it is served the same way: the app gets it without uvicorn's request
  cycle, and its answer leaves in one write. A request arriving on the connection before
  that answer waits for it (answers keep their order).

>>> config = uvicorn.Config(app, http=guarded_protocol(EdgeLimits()))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from bot.edge_admission import AdmissionGate
from bot.http_direct import (
    WEBHOOK_PATH,
    DirectExchange,
    lone_webhook_post,
    parse_head,
    plain_webhook_post,
)
from bot.settings import BotSettings

log = logging.getLogger("bot.http_guard")

_LINGER_SECONDS = 2.0
# Descriptors kept for the inbox, the Send API pool, logs and the listening socket.
_RESERVED_DESCRIPTORS = 64


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """Per-connection limits; the defaults are the settings' defaults."""

    max_header_bytes: int = 64 * 1024
    # A whole POST's body is gathered across reads up to this (bot.http_direct); past it the
    # parser reads the request (and the edge answers 413).
    max_body_bytes: int = 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    linger_seconds: float = _LINGER_SECONDS

    @classmethod
    def from_settings(cls, settings: BotSettings) -> EdgeLimits:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections=_within_descriptor_limit(settings.http_max_connections),
        )


def _within_descriptor_limit(requested: int) -> int:
    """The connection cap, lowered to fit the process's descriptor limit (with a warning)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or requested + _RESERVED_DESCRIPTORS <= soft:
        return requested
    cap = max(1, soft - _RESERVED_DESCRIPTORS)
    log.warning(
        "HTTP_MAX_CONNECTIONS lowered from %d to %d to fit the descriptor limit (ulimit -n %d)",
        requested,
        cap,
        soft,
        extra={"log_type": "lifecycle"},
    )
    return cap


def guarded_protocol(
    limits: EdgeLimits,
    on_close: Callable[[str], None] | None = None,
    gate: AdmissionGate | None = None,
    *,
    direct: bool = False,
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class enforcing ``limits``; ``on_close(reason)`` counts each guard close
    (reasons: ``bot.metrics.EDGE_CLOSE_REASONS``); ``gate`` refuses webhook POSTs while the
    backlog is too deep (``bot.edge_admission``); ``direct`` serves whole webhook POSTs
    without the parser (``bot.http_direct``).

    Each call makes a new class with its own connection table (one per served app).
    """
    attributes: dict[str, Any] = {
        "limits": limits,
        "_table": _Table(limits, on_close or _ignore),
        "direct": direct,
    }
    if gate is not None:
        retry_after = gate.refusal.retry_after_seconds
        attributes["gate"] = gate
        attributes["_refusals"] = (
            _refusal_bytes(retry_after, keep_alive=True),
            _refusal_bytes(retry_after, keep_alive=False),
        )
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attributes)


_REFUSAL_BODY = b'{"error":"overloaded, retry later"}'


def _refusal_bytes(retry_after: int, *, keep_alive: bool) -> bytes:
    """The whole ``503`` answer, built once: refusing writes these bytes and nothing else."""
    return b"".join(
        (
            STATUS_LINE[503],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(_REFUSAL_BODY),
            b"retry-after: %d\r\n" % retry_after,
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
            _REFUSAL_BODY,
        )
    )


def _ignore(reason: str) -> None:
    pass


class _Table:
    """Open connections in least-recently-active order, and the sweep that enforces deadlines."""

    def __init__(self, limits: EdgeLimits, on_close: Callable[[str], None]) -> None:
        self.on_close = on_close
        self.connections: dict[GuardedHttpToolsProtocol, None] = {}
        self.sweeping: asyncio.TimerHandle | None = None
        # Deadlines are enforced to within a quarter of the shortest one (at most 1 s late).
        shortest = min(limits.header_timeout, limits.body_timeout, limits.linger_seconds)
        self.tick = min(1.0, max(0.05, shortest / 4))

    def ensure_sweeping(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sweeping is None:
            self.sweeping = loop.call_later(self.tick, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sweeping = None
        now = loop.time()
        for connection in list(self.connections):
            deadline = connection._deadline
            if deadline is not None and deadline <= now and not connection.transport.is_closing():
                connection._expire()
        if self.connections:
            self.ensure_sweeping(loop)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (build it with ``guarded_protocol``)."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()
    _table: ClassVar[_Table] = _Table(EdgeLimits(), _ignore)
    gate: ClassVar[AdmissionGate | None] = None
    _refusals: ClassVar[tuple[bytes, bytes]] = (b"", b"")
    direct: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._reading_headers = True
        self._deadline: float | None = None
        self._deadline_reason = "header_timeout"
        self._lingering = False
        self._headers_seen = 0
        self._gentle = _GentleClose(self)
        self._refused = False  # this request was answered 503; its body is being discarded
        self._in_message = False  # the parser holds part of a request
        self._direct_busy = False  # a whole POST is being answered without the parser
        self._held: list[bytes] = []  # what arrived meanwhile (a pipelined request)
        self._partial = b""  # a whole POST's head and the first part of its body
        self._close_after = False  # the server is shutting down: close once answered

    # --- connection lifetime ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = self._table.connections
        if len(table) >= self.limits.max_connections and not self._evict_one():
            self._table.on_close("refused")
            log.debug("connection refused: every connection is busy", extra={"log_type": "http"})
            transport.close()
            return
        table[self] = None
        self._expect("header_timeout", self.limits.header_timeout)
        self._table.ensure_sweeping(self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self._table.connections.pop(self, None)
        super().connection_lost(exc)

    def _evict_one(self) -> bool:
        for other in self._table.connections:
            if not other._busy():
                self._table.connections.pop(other)
                other._table.on_close("evicted")
                other.transport.close()
                return True
        return False

    def _busy(self) -> bool:
        """A request is in progress: its headers are in and its answer is not complete."""
        if self._direct_busy or self._partial:
            return True
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not self._lingering

    # --- reading ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is out; the rest of the request is discarded
        if self._direct_busy:  # answers go out in order: hold the next request
            self._held.append(data)
            self.flow.pause_reading()
            return
        if not self._in_message:
            if self._partial:  # the rest of a POST's body (bot.http_direct)
                data, self._partial = self._partial + data, b""
                self._reading_headers = True
            if self._refused_whole(data) or self._served_whole(data):
                return
        if self._reading_headers:
            room = self.limits.max_header_bytes - self._header_bytes
            if len(data) > room:
                self._header_bytes = self.limits.max_header_bytes
                headers_before = self._headers_seen
                super().data_received(data[:room])
                if self.transport.is_closing():
                    return
                if self._headers_seen == headers_before:  # the cap passed inside the headers
                    self._reject_headers()
                    return
                self.data_received(data[room:])  # the body or the next request
                return
            self._header_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._in_message = True
        super().on_message_begin()
        if self._deadline is None:  # a keep-alive connection starts its next request
            self._expect("header_timeout", self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._headers_seen += 1
        self._expect("body_timeout", self.limits.body_timeout)
        gate = self.gate
        if gate is not None and self._refusable() and gate.refuses():
            self._refuse()
            return
        super().on_headers_complete()
        if self.cycle is not None:
            # uvicorn closes through the cycle's transport once it answered; close gently.
            self.cycle.transport = self._gentle  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._refused:
            self._refused = False
            self._answered_whole()
            return
        super().on_message_complete()
        self._ready_for_next()

    def _ready_for_next(self) -> None:
        # The request is read: from here the time is the server's, not the client's.
        self._deadline = None
        self._reading_headers = True
        self._header_bytes = 0

    # --- admission control --------------------------------------------------------------------

    def _refusable(self) -> bool:
        """A webhook POST with no earlier answer pending on this connection (pipelining)."""
        return (
            self._nothing_pending()
            and self.parser.get_method() == b"POST"
            and self.url.split(b"?", 1)[0] == WEBHOOK_PATH
        )

    def _nothing_pending(self) -> bool:
        """No earlier request on this connection is still being answered or queued behind."""
        cycle = self.cycle
        return (cycle is None or cycle.response_complete) and not self.pipeline

    def _refused_whole(self, data: bytes) -> bool:
        """Refuse a read that is one whole plain webhook POST without parsing it (see the
        module docstring); False leaves ``data`` to the parser."""
        gate = self.gate
        if gate is None or not gate.refusing or not self._nothing_pending():
            return False  # the cheap checks first
        if not lone_webhook_post(data, self.limits.max_header_bytes) or not gate.refuses():
            return False
        self._unset_keepalive_if_required()
        self.transport.write(self._refusals[0])
        self._answered_whole()
        return True

    # --- a whole webhook POST without the parser (bot.http_direct) ---------------------------

    def _served_whole(self, data: bytes) -> bool:
        """Serve a read that is one whole plain webhook POST without the parser or a request
        cycle, or keep one whose body is still coming; False leaves ``data`` to the parser."""
        if not self.direct or not self._nothing_pending():
            return False
        framing = plain_webhook_post(data, self.limits.max_header_bytes)
        if framing is None:
            return False
        body_start, length = framing
        if len(data) < body_start + length:
            return self._await_body(data, length)
        parsed = parse_head(data[: body_start - 4]) if len(data) == body_start + length else None
        if parsed is None:  # a malformed head, or a next request behind this one
            return False
        query, headers = parsed
        self._unset_keepalive_if_required()
        self._ready_for_next()
        scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": headers,
            "state": self.app_state.copy(),
            "method": "POST",
            "path": self.root_path + "/webhook",
            "raw_path": self.root_path.encode("ascii") + WEBHOOK_PATH,
            "query_string": query,
        }
        exchange = DirectExchange(
            data[body_start:], self._write_direct, self.server_state.default_headers
        )
        self._direct_busy = True
        task = self.loop.create_task(self._serve_direct(scope, exchange))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        return True

    async def _serve_direct(self, scope: dict[str, Any], exchange: DirectExchange) -> None:
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:  # what uvicorn's request cycle does: log, 500 if nothing was sent
            log.exception("exception in the ASGI app", extra={"log_type": "http"})
            if not self.transport.is_closing():
                error = exchange.fail()
                if error is not None:
                    self.transport.write(error)
                self.transport.close()
        finally:
            self._direct_busy = False
        if not exchange.complete:  # nothing sensible can follow a half or missing answer
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        self._answered_whole()
        self.flow.resume_reading()
        held, self._held = self._held, []
        if held:
            self.data_received(b"".join(held))

    def _await_body(self, data: bytes, length: int) -> bool:
        """Keep a plain webhook POST whose body (``length`` bytes) is still coming, to serve
        it whole once it is in; False leaves ``data`` to the parser: a body over the limit,
        or a POST the gate refuses now, which the parser answers as soon as the head is in."""
        gate = self.gate
        limits = self.limits
        if length > limits.max_body_bytes or (gate is not None and gate.refusing):
            return False
        self._unset_keepalive_if_required()
        self._partial = data
        self._reading_headers = False  # the head is in: a client that stalls gets a 408
        self._expect("body_timeout", limits.body_timeout)
        return True

    def _write_direct(self, answer: bytes, close: bool) -> None:
        if self.transport.is_closing():
            return  # the client left; the event, if stored, is processed all the same
        self.transport.write(answer)
        if close or self._close_after:
            self.close_gently()

    def _answered_whole(self) -> None:
        self._ready_for_next()
        # What uvicorn does once an answer is complete: count it, wait for the next one.
        self.server_state.total_requests += 1
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        self._touch()

    def _refuse(self) -> None:
        keep_alive, close = self._refusals
        if self.parser.should_keep_alive() and not self.expect_100_continue:
            self._refused = True
            self.transport.write(keep_alive)
            return
        # The client will close, or waits for "100 Continue" before its body: answer, linger.
        self.transport.write(close)
        self._linger()

    def shutdown(self) -> None:
        if self._direct_busy or self._partial:  # answer the request under way, then close
            self._close_after = True
            return
        super().shutdown()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._touch()

    def _touch(self) -> None:
        table = self._table.connections
        if self in table:  # most recently active last: evicted last
            del table[self]
            table[self] = None

    # --- closing ------------------------------------------------------------------------------

    def close_gently(self) -> None:
        """Close now if the request was read whole, else linger (see the module docstring)."""
        if self._lingering or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.more_body:
            self.transport.close()
            return
        self._linger()

    def _linger(self) -> None:
        self._lingering = True
        self._expect("linger", self.limits.linger_seconds)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # after the buffered answer: the client sees it, then EOF
        self.flow.resume_reading()

    def _reject_headers(self) -> None:
        self._table.on_close("header_too_large")
        self._write_error(431, b"request headers too large")
        self._linger()

    def _expire(self) -> None:
        reason = self._deadline_reason
        self._deadline = None
        if reason == "linger":
            self.transport.close()
            return
        self._table.on_close(reason)
        log.debug("connection timed out: %s", reason, extra={"log_type": "http"})
        started = self._header_bytes > 0 or not self._reading_headers
        answered = self._refused or (self.cycle is not None and self.cycle.response_started)
        if started and not answered:
            self._write_error(408, b"request not received in time")
        self.transport.close()

    def _write_error(self, status: int, message: bytes) -> None:
        body = b'{"error":"%s"}' % message
        self.transport.write(
            b"".join(
                (
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                )
            )
        )

    def _expect(self, reason: str, seconds: float) -> None:
        """Set the one deadline this connection has now (checked by the table's sweep)."""
        self._deadline_reason = reason
        self._deadline = self.loop.time() + seconds


class _GentleClose:
    """The transport as a request cycle sees it: ``close()`` lingers when input is unread."""

    def __init__(self, protocol: GuardedHttpToolsProtocol) -> None:
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_gently()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol.transport, name)
