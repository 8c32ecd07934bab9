"""The webhook verification GET Meta sends when a callback URL is configured (reference §1).

Success is ``200`` with the body equal to the challenge (``body.strip()`` unless strict —
Meta's whitespace tolerance is undocumented). Failures come back explained for a person and
as the Graph ``(#2200)`` message that ``POST /{app-id}/subscriptions`` answers with.

>>> result = await verify_callback("http://127.0.0.1:8000/webhook", "tok")  # doctest: +SKIP

Here against a bot faked in memory that refuses the token (``client`` is any httpx client):

>>> import asyncio
>>> bot = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(403)))
>>> result = asyncio.run(verify_callback("http://127.0.0.1:8000/webhook", "tok", client=bot))
>>> result.ok, result.failure
(False, 'wrong_status')
>>> result.reason
'GET http://127.0.0.1:8000/webhook answered HTTP 403 Forbidden; expected 200 with the challenge ...'
>>> result.graph_error_message()
'(#2200) Callback verification failed with the following errors: HTTP Status Code = 403; ...'
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx

MAX_BODY_BYTES = 64 * 1024
_SHOWN_BODY_CHARS = 200
_GRAPH_PREFIX = "(#2200) Callback verification failed with the following errors: "


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """The outcome of one verification GET; ``failure`` is a closed enum, ``reason`` prose."""

    ok: bool
    url: str
    challenge: str
    status: int | None
    body: str | None
    reason: str
    failure: (
        str | None
    )  # connection_refused | connection_error | timeout | wrong_status | body_mismatch
    elapsed_seconds: float
    timeout_seconds: float = 5.0

    def graph_error_message(self) -> str:
        """Graph's 2200 text for this failure (empty string when the handshake succeeded)."""
        if self.ok:
            return ""
        if self.failure == "timeout":
            ms = int(self.timeout_seconds * 1000)
            return (
                _GRAPH_PREFIX + f"curl_errno = 28; curl_error = Operation timed out after {ms} "
                "milliseconds with 0 bytes received; "
                "HTTP Status Code = 0; HTTP Message = Unknown Error"
            )
        if self.status is None:
            return (
                _GRAPH_PREFIX + "curl_errno = 7; curl_error = Couldn't connect to server; "
                "HTTP Status Code = 0; HTTP Message = Unknown Error"
            )
        message = f"HTTP Status Code = {self.status}; HTTP Message = {_phrase(self.status)}"
        if self.failure == "body_mismatch":
            message += (
                "; The URL couldn't be validated. Response does not match challenge, "
                f'expected value="{self.challenge}", received="{_shown(self.body or "")}"'
            )
        return _GRAPH_PREFIX + message

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def new_challenge(rng: random.Random | None = None) -> str:
    """A random 9–10 digit integer, like Meta's ``hub.challenge``."""
    return str((rng or random.SystemRandom()).randint(100_000_000, 2_147_483_647))


async def verify_callback(
    callback_url: str,
    verify_token: str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - one GET's deadline, reported in the result
    strict: bool = False,
    challenge: str | None = None,
    rng: random.Random | None = None,
) -> HandshakeResult:
    """Send ``GET callback?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…`` and judge it."""
    challenge = challenge or new_challenge(rng)
    params = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    own_client = client is None
    http = client or httpx.AsyncClient(trust_env=False)
    started = time.perf_counter()

    def result(
        failure: str | None, reason: str, status: int | None = None, body: str | None = None
    ) -> HandshakeResult:
        elapsed = time.perf_counter() - started
        return HandshakeResult(
            failure is None,
            callback_url,
            challenge,
            status,
            body,
            reason,
            failure,
            elapsed,
            timeout,
        )

    try:
        async with http.stream(
            "GET",
            callback_url,
            params=params,
            timeout=timeout,
            headers={"User-Agent": "facebookplatform/1.0 (+http://developers.facebook.com)"},
        ) as response:
            raw = b""
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) >= MAX_BODY_BYTES:
                    break
    except httpx.TimeoutException:
        return result("timeout", f"GET {callback_url} got no answer within {timeout:g} s")
    except httpx.ConnectError as exc:
        if "refused" in str(exc).lower():
            return result(
                "connection_refused",
                f"GET {callback_url} failed: connection refused (is the bot listening there?)",
            )
        return result("connection_error", f"GET {callback_url} failed: could not connect ({exc})")
    except httpx.HTTPError as exc:
        return result("connection_error", f"GET {callback_url} failed: {type(exc).__name__}: {exc}")
    finally:
        if own_client:
            await http.aclose()
    body = raw.decode("utf-8", errors="replace")
    status = response.status_code
    if status != 200:
        return result(
            "wrong_status",
            f"GET {callback_url} answered HTTP {status} {_phrase(status)}; expected 200 with the "
            f"challenge {challenge} as the body (a 403 usually means the verify token differs)",
            status,
            body,
        )
    matches = body == challenge if strict else body.strip() == challenge
    if not matches:
        return result(
            "body_mismatch",
            f"GET {callback_url} answered 200 but the body was {_shown(body)!r}; expected exactly "
            f"the challenge {challenge!r}"
            + ("" if strict else " (surrounding whitespace allowed)"),
            status,
            body,
        )
    return result(None, "", status, body)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _shown(body: str) -> str:
    return body if len(body) <= _SHOWN_BODY_CHARS else body[:_SHOWN_BODY_CHARS] + "…"
