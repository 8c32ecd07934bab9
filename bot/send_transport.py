"""The Send API client's network layer: which transport carries httpx, and what a failure means.

>>> failure_for(httpx.ConnectError("refused")).error_class   # never reached Graph
<ErrorClass.TRANSIENT: 'transient'>
>>> failure_for(httpx.ReadTimeout("slow")).error_class       # sent; the answer was lost
<ErrorClass.RISKY: 'risky'>

The split follows contracts §1: a failure before the request was written is known not
delivered (retry it); one after it may have reached Graph (``RISKY``, settled by the echo
rule, never retried blindly). ``SEND_API_TRANSPORT`` picks httpx's own pool (``httpx``) or
aiohttp's (``aiohttp``, via ``httpx-aiohttp``) under the same ``httpx.AsyncClient``.
"""

from __future__ import annotations

from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from bot.send_wire import Answer, lost_answer, transport_failure

TransportKind = Literal["httpx", "aiohttp"]

# httpx failures raised before the whole request was handed to the socket.
_NOT_WRITTEN = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.LocalProtocolError,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)
# aiohttp failures before anything was sent. httpx-aiohttp maps aiohttp's errors coarsely
# (a server reset becomes ``ConnectTimeout``), so its original error, the ``__cause__``, decides.
_AIOHTTP_NOT_WRITTEN = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.ClientProxyConnectionError,
)


def build_transport(kind: TransportKind, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for ``kind``; ``None`` lets httpx build its own pool from ``limits``."""
    if kind == "aiohttp":
        return AiohttpTransport(limits=limits, trust_env=False)
    return None


def failure_for(exc: httpx.HTTPError) -> Answer:
    """Classify a request that raised instead of answering (detail: redact before logging)."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        written = not isinstance(cause, _AIOHTTP_NOT_WRITTEN)
        timed_out = isinstance(cause, TimeoutError)
    else:
        written = not isinstance(exc, _NOT_WRITTEN)
        timed_out = isinstance(exc, httpx.TimeoutException)
    detail = repr(exc) if cause is None else f"{exc!r} from {cause!r}"
    if not written:
        return transport_failure("timeout" if timed_out else "network", detail)
    return lost_answer("timeout" if timed_out else "reset", detail)
