"""Which reads the edge may refuse or serve without parsing (``bot.http_direct``'s
``lone_webhook_post``): only one whole plain POST; anything whose framing or connection needs
the parser is left to it, which handles pipelining, ``100-continue``, ``Connection: close``
and chunking."""

from __future__ import annotations

import pytest

from bot.http_direct import lone_webhook_post
from bot.http_guard import EdgeLimits

BODY = b'{"object":"page","entry":[]}'
MAX_HEADER_BYTES = EdgeLimits().max_header_bytes


def post(
    *headers: bytes,
    body: bytes = BODY,
    line: bytes = b"POST /webhook HTTP/1.1",
    length: bool = True,
) -> bytes:
    fields = [b"Host: bot", *headers]
    if length:
        fields.append(b"Content-Length: %d" % len(body))
    return line + b"\r\n" + b"\r\n".join(fields) + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "request_bytes",
    [
        post(),
        post(b"X-Hub-Signature-256: sha256=" + b"0" * 64, b"content-type: application/json"),
        post(line=b"POST /webhook?probe=1 HTTP/1.1"),
        post(body=b""),
        post(b"Connection: keep-alive"),  # HTTP/1.1's default; httpx and Node send it
    ],
    ids=["plain", "meta-headers", "query", "empty-body", "keep-alive"],
)
def test_one_whole_plain_post_is_refused_without_parsing(request_bytes: bytes) -> None:
    assert lone_webhook_post(request_bytes, MAX_HEADER_BYTES)


@pytest.mark.parametrize(
    "request_bytes",
    [
        post()[:-1],  # the body is not all in yet
        post() + post(),  # pipelined: the parser keeps the order of the answers
        post() + b"G",  # the start of a next request
        post(b"Transfer-Encoding: chunked", length=False),
        post(b"Content-Length: 0"),  # two lengths: request smuggling is the parser's to refuse
        post(b"Expect: 100-continue"),
        post(b"Connection: close"),
        post(b"Connection: keep-alive, Upgrade"),
        post(b"Connection: keep-alive", b"Connection: keep-alive"),
        post(line=b"POST /webhook HTTP/1.0"),
        post(line=b"POST /webhooks HTTP/1.1"),
        post(line=b"POST /Webhook HTTP/1.1"),
        post(line=b"GET /webhook HTTP/1.1"),
        post(length=False),
        post(b"Content-Length: 1x", length=False),
        post().replace(b"\r\n\r\n", b"\r\n"),  # no end of headers
        # What the parser answers with a 400 is never refused (503) or served without it.
        post(line=b"POST /webhook http/1.1"),
        post(line=b"POST /webhook?a b HTTP/1.1"),
        post(line=b"POST /webhook?a=\x01 HTTP/1.1"),
        post(b"X-A: \x01"),
        post(b"X-A: a\x7fb"),
        post(b"X-A: a\nb"),
        # The parser cuts a fragment from the query string: its scope, not ours.
        post(line=b"POST /webhook?a=1#f HTTP/1.1"),
    ],
    ids=[
        "partial-body",
        "pipelined",
        "next-request-started",
        "chunked",
        "two-lengths",
        "expect-continue",
        "connection-close",
        "connection-upgrade",
        "two-connection-headers",
        "http-1.0",
        "other-path",
        "path-case",
        "other-method",
        "no-length",
        "bad-length",
        "headers-unfinished",
        "version-case",
        "space-in-target",
        "control-in-target",
        "control-in-value",
        "del-in-value",
        "bare-lf",
        "fragment",
    ],
)
def test_anything_else_is_left_to_the_parser(request_bytes: bytes) -> None:
    assert not lone_webhook_post(request_bytes, MAX_HEADER_BYTES)
