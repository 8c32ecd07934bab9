"""The Send API client's network layer: which transport carries httpx, and what a failure means.

>>> failure_for(httpx.ConnectError("refused")).error_class   # never reached Graph
<ErrorClass.TRANSIENT: 'transient'>
>>> failure_for(httpx.ReadTimeout("slow")).error_class       # sent; the answer was lost
<ErrorClass.RISKY: 'risky'>

The split follows contracts §1: a failure before the request was written is known not
delivered (retry it); one after it may have reached Graph (``RISKY``, settled by the echo
rule, never retried blindly). ``SEND_API_TRANSPORT`` picks aiohttp's pool (``aiohttp``, via
``httpx-aiohttp``, the default: fewer CPU-seconds per call in ``python -m bench send``) or
httpx's own (``httpx``) under the same ``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
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
# aiohttp failures before anything was sent.
_AIOHTTP_NOT_WRITTEN = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
)


class SafeTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport so that a failure leaves it as an httpx error whose type says
    whether the request was written and whose text has been through ``redact``.

    Needed because the httpx instrumentation records the exception's text on the client span,
    and because httpx-aiohttp maps aiohttp's errors coarsely (a reset after the request was
    written becomes ``ConnectTimeout``) or not at all. The sum of the request's timeouts is
    also a deadline for its whole exchange up to the response head: aiohttp has no write
    timeout, and a server that trickles bytes never trips a per-read one.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, redact: Callable[[str], str]) -> None:
        self._inner = inner
        self._redact = redact

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        budget = request.extensions.get("timeout", {})
        deadline = sum(v for v in budget.values() if v is not None) or None
        try:
            async with asyncio.timeout(deadline):
                return await self._inner.handle_async_request(request)
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ClientError):  # aiohttp's own, unmapped
                raise _normalised(exc, request, self._redact) from None
            # Our own deadline: the request may have gone out, the answer did not come.
            raise httpx.ReadTimeout(f"no answer within {deadline:g} s", request=request) from None
        except (httpx.RequestError, aiohttp.ClientError) as exc:
            # No chained cause: its text could quote a secret into the span's stack trace.
            raise _normalised(exc, request, self._redact) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def build_transport(
    kind: TransportKind, limits: httpx.Limits, redact: Callable[[str], str], base_url: str
) -> SafeTransport:
    """The pool for ``kind`` (``SEND_API_TRANSPORT``) inside a ``SafeTransport``, through
    the environment's proxy for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``...) if any."""
    proxy = environment_proxy(base_url)
    inner: httpx.AsyncBaseTransport
    if kind == "aiohttp":
        inner = AiohttpTransport(limits=limits, proxy=proxy)
    else:
        inner = httpx.AsyncHTTPTransport(limits=limits, proxy=proxy)
    return SafeTransport(inner, redact)


def environment_proxy(url: str) -> httpx.Proxy | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``ALL_PROXY``, minus ``NO_PROXY``), as httpx's own client picks it; never for loopback.

    >>> environment_proxy("http://127.0.0.1:8081") is None  # loopback bypasses proxies
    True
    """
    target = httpx.URL(url)
    if target.host in ("localhost", "127.0.0.1", "::1") or urllib.request.proxy_bypass(target.host):
        return None
    found = urllib.request.getproxies().get(target.scheme)
    return httpx.Proxy(found) if found else None


def failure_for(exc: httpx.HTTPError) -> Answer:
    """Classify a request that raised instead of answering (detail: redact before logging)."""
    timed_out = isinstance(exc, httpx.TimeoutException)
    if isinstance(exc, _NOT_WRITTEN):
        return transport_failure("timeout" if timed_out else "network", repr(exc))
    return lost_answer("timeout" if timed_out else "reset", repr(exc))


def _normalised(
    exc: httpx.RequestError | aiohttp.ClientError,
    request: httpx.Request,
    redact: Callable[[str], str],
) -> httpx.RequestError:
    # httpx-aiohttp raises its mapped error `from` aiohttp's own: that one decides.
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    kind: type[httpx.RequestError]
    if isinstance(cause, aiohttp.ClientError):
        written = not isinstance(cause, _AIOHTTP_NOT_WRITTEN)
        timed_out = isinstance(cause, TimeoutError)
        if written:
            kind = httpx.ReadTimeout if timed_out else httpx.ReadError
        else:
            kind = httpx.ConnectTimeout if timed_out else httpx.ConnectError
    else:
        kind = type(exc) if isinstance(exc, httpx.RequestError) else httpx.ReadError
    return kind(redact(f"{type(cause).__name__}: {cause}"), request=request)
