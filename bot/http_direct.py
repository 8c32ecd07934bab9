"""A read that holds one whole webhook POST, served without the HTTP parser.

Meta sends each webhook POST as one small HTTP/1.1 request on a keep-alive connection, so a
read usually holds exactly one whole request: ``lone_webhook_post`` says when. For that case
``bot.http_guard`` skips httptools' per-header callbacks and uvicorn's request cycle, both
when it refuses the POST (admission control) and when it serves it: ``parse_head`` builds
the ASGI headers, and a ``DirectExchange`` gives the app the body in one message and writes
its answer in one transport write. The app is the same; only the HTTP framing is shorter.

Why: measured with ``wrk`` on one core, a raw protocol that only verifies and parses acked
47,000-53,000 POSTs/s where the same work as a bare ASGI app under uvicorn acked
15,000-21,000. Most of a minimal ack is the server's machinery, not the app's.

Anything else (a partial or pipelined read, a chunked or ``100-continue`` body, a
``Connection`` header, HTTP/1.0, a repeated or malformed length or header line, a control
byte anywhere in the head) is left to the parser, which keeps its own rules and errors for
it: what the parser refuses with a 400 never reaches the app by the shorter way.

>>> parse_head(b"POST /webhook?x=1 HTTP/1.1\\r\\nHost: a\\r\\nX-Hub-Signature-256: sha256=ab")
(b'x=1', [(b'host', b'a'), (b'x-hub-signature-256', b'sha256=ab')])
>>> parse_head(b"POST /webhook HTTP/1.1\\r\\nBad Header: a") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

WEBHOOK_PATH = b"/webhook"
_WEBHOOK_POST = b"POST " + WEBHOOK_PATH
_CONTENT_LENGTH = b"\r\ncontent-length:"
# Headers after which the request's framing or its connection's fate needs the parser.
_PARSER_ONLY_HEADERS = (b"\r\ntransfer-encoding:", b"\r\nexpect:")
_CONNECTION = b"\r\nconnection:"
_HTTP_1_1 = b" HTTP/1.1"
# Bytes httptools refuses in a request target (400: controls, space, DEL and above), and
# "#", whose fragment it cuts from the query string.
_NOT_IN_TARGET = re.compile(rb"[^\x21-\x7e]|#")
# Control bytes httptools refuses in a head (400); HTAB is allowed, CR and LF end lines.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# RFC 9110 token characters: a header name with anything else is left to the parser (400).
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DISCONNECT = {"type": "http.disconnect"}
_INTERNAL_ERROR = b"".join(
    (
        STATUS_LINE[500],
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n",
        b"connection: close\r\n\r\nInternal Server Error",
    )
)


def lone_webhook_post(data: bytes, max_header_bytes: int) -> int:
    """Where the body starts if ``data`` is exactly one whole ``POST /webhook`` HTTP/1.1
    request with a ``Content-Length`` body, headers within ``max_header_bytes`` and nothing
    that changes how its connection goes on; else 0.

    >>> lone_webhook_post(b"POST /webhook HTTP/1.1\\r\\nContent-Length: 2\\r\\n\\r\\n{}", 1024)
    45
    >>> lone_webhook_post(b"POST /webhook HTTP/1.1\\r\\nContent-Length: 3\\r\\n\\r\\n{}", 1024)
    0
    """
    framing = plain_webhook_post(data, max_header_bytes)
    if framing is None or len(data) != sum(framing):
        return 0
    return framing[0]


def plain_webhook_post(data: bytes, max_header_bytes: int) -> tuple[int, int] | None:
    """Where the body of a plain ``POST /webhook`` starts and its declared length, once its
    head is in (the body may be partial, whole or followed by more); else None.

    A client that writes the head and the body separately (httpx does) is often read that
    way: ``data`` shorter than the sum is such a body still coming.

    >>> plain_webhook_post(b"POST /webhook HTTP/1.1\\r\\nContent-Length: 3\\r\\n\\r\\n{", 1024)
    (45, 3)
    """
    after_path = data[len(_WEBHOOK_POST) : len(_WEBHOOK_POST) + 1]
    if not data.startswith(_WEBHOOK_POST) or after_path not in (b" ", b"?"):
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > max_header_bytes:
        return None
    raw_head = data[:end]
    line_end = raw_head.find(b"\r\n")
    if line_end < 0 or not _strict_head(raw_head, line_end):
        return None
    head = raw_head.lower()
    if any(name in head for name in _PARSER_ONLY_HEADERS) or not _kept_alive(head):
        return None
    declared = _single_value(head, _CONTENT_LENGTH)
    if declared is None or not declared.isdigit():
        return None
    return end + 4, int(declared)


def _strict_head(head: bytes, line_end: int) -> bool:
    """The request line is ``POST <target> HTTP/1.1`` with a target of visible ASCII and no
    fragment, and the head holds no control byte but HTAB, with CR and LF only as line ends.
    Those are the parser's rules (it answers 400 otherwise): the shorter way must agree."""
    line = head[:line_end]
    if not line.endswith(_HTTP_1_1) or _NOT_IN_TARGET.search(line, 5, line_end - len(_HTTP_1_1)):
        return False
    if head.count(b"\r") != head.count(b"\n") or head.count(b"\r") != head.count(b"\r\n"):
        return False
    return _CONTROL.search(head) is None


def _kept_alive(head: bytes) -> bool:
    """No ``Connection`` header, or one that says ``keep-alive`` (HTTP/1.1's default anyway:
    httpx and Node send it on every request)."""
    if _CONNECTION not in head:
        return True
    return _single_value(head, _CONNECTION) == b"keep-alive"


def _single_value(head: bytes, name: bytes) -> bytes | None:
    """The value of the header ``name`` (a lower-cased ``b"\\r\\nname:"``) if it occurs once."""
    start = head.find(name)
    if start < 0 or head.find(name, start + 1) >= 0:
        return None
    value_end = head.find(b"\r\n", start + len(name))
    return head[start + len(name) : value_end if value_end >= 0 else len(head)].strip()


def parse_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """The query string and ASGI headers (lower-case names) of a head that
    ``plain_webhook_post`` took (without its final blank line), or None when a header line
    is malformed. A value loses its trailing blanks if the installed uvicorn drops them."""
    lines = head.split(b"\r\n")
    query = lines[0].split(b" ", 2)[1].partition(b"?")[2]
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            return None
        headers.append((name.lower(), _strip_value(value, b" \t")))
    return query, headers


def parser_strips_trailing_blanks() -> bool:
    """Whether the installed uvicorn drops the blanks after a header value (0.55 does, as RFC
    9110 leaves them out of the value; earlier versions kept what httptools hands over).
    Asked once: the shorter way must hand the app the same headers as the parser."""
    probe = SimpleNamespace(headers=[], expect_100_continue=False)
    HttpToolsProtocol.on_header(probe, b"x", b"v \t")  # type: ignore[arg-type]
    return bool(probe.headers == [(b"x", b"v")])


_strip_value = bytes.strip if parser_strips_trailing_blanks() else bytes.lstrip


class DirectExchange:
    """ASGI ``receive`` and ``send`` for a request whose body is already whole.

    ``write(answer, close)`` puts the whole answer on the wire; ``close`` says the app asked
    for ``Connection: close``. ``default_headers`` are the server's own (its ``Date``).
    """

    __slots__ = ("_body", "_default_headers", "_head", "_write", "complete", "started")

    def __init__(
        self,
        body: bytes,
        write: Callable[[bytes, bool], None],
        default_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._body: bytes | None = body
        self._write = write
        self._default_headers = default_headers
        self._head: list[bytes] = []
        self.started = False
        self.complete = False

    async def receive(self) -> dict[str, Any]:
        body = self._body
        if body is None:  # the body was taken: nothing more will come
            return _DISCONNECT
        self._body = None
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {message['type']}")
            self.started = True
            head = [STATUS_LINE[message["status"]]]
            for name, value in (*self._default_headers, *message.get("headers", ())):
                head += (name, b": ", value, b"\r\n")
            self._head = head
            return
        if self.complete or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {message['type']}")
        if message.get("more_body", False):  # the webhook's answers are always one body
            raise RuntimeError("a direct answer is one body")
        head = self._head
        head += (b"\r\n", message.get("body", b""))
        self.complete = True
        self._write(b"".join(head), _asks_close(head))

    def fail(self) -> bytes | None:
        """What to write when the app raised: a 500 if nothing was sent yet (None: close)."""
        return None if self.started else _INTERNAL_ERROR


def _asks_close(head: list[bytes]) -> bool:
    # head is [status line, name, ": ", value, CRLF, name, ...]
    return any(
        head[i].lower() == b"connection" and head[i + 2].lower() == b"close"
        for i in range(1, len(head) - 3, 4)
    )
