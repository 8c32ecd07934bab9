"""Send API client: one pooled httpx client, Graph error classification, bounded retries.

>>> api = HttpSendApi(settings, BotMetrics(registry), tracer_provider=provider)  # doctest: +SKIP
>>> result = await api.send("104501234567890", "6543210987654321", {"text": "hi"})  # doctest: +SKIP
>>> result.ok, result.message_id, result.attempts  # doctest: +SKIP
(True, 'm_...', 1)

The page token travels as ``access_token`` in the JSON body, never in the URL, so it cannot
leak through access logs, span ``url.full`` attributes or httpx exception texts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import TracerProvider

from bot.metrics import SEND_ERROR_CODES, BotMetrics, error_code_label
from bot.retry import ErrorClass, RetryPolicy, classify_graph_error
from bot.settings import BotSettings

logger = logging.getLogger("bot.send_api")

_REDACTED = "[REDACTED]"
_MAX_LOGGED_BODY = 2000
_JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one ``send`` (after its retries).

    ``error_class`` is a ``bot.retry.ErrorClass`` value (``None`` on success); ``error_label``
    is the bounded metric label (``"none"``, ``"190"``, ``"network"``, ``"no_token"``...).
    """

    ok: bool
    message_id: str | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_class: ErrorClass | None = None
    http_status: int | None = None
    attempts: int = 1
    error_label: str = "none"

    @property
    def transient(self) -> bool:
        """True when the last failure was worth retrying (transient or throttled)."""
        return self.error_class is not None and self.error_class.retryable


class SendApi(Protocol):
    """What the workers need from a Send API client (tests pass a recording fake)."""

    async def send(
        self,
        page_id: str,
        psid: str,
        message: dict[str, Any],
        *,
        messaging_type: str = "RESPONSE",
        tag: str | None = None,
    ) -> SendResult: ...

    async def aclose(self) -> None: ...


class HttpSendApi:
    """``SendApi`` over HTTP to Graph (or mock_meta at ``GRAPH_API_BASE``).

    One ``httpx.AsyncClient`` with a keep-alive pool of ``SEND_API_MAX_CONNECTIONS`` serves
    every send; each attempt is a CLIENT span (httpx instrumentation, which also injects
    ``traceparent``). ``transport`` replaces the network (``httpx.MockTransport`` or an
    ``httpx.ASGITransport`` onto the mock in tests); ``sleep`` and ``retry_policy`` are
    injectable so retry tests run in milliseconds.
    """

    def __init__(
        self,
        settings: BotSettings,
        metrics: BotMetrics,
        *,
        tracer_provider: TracerProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._sleep = sleep
        self._policy = retry_policy or RetryPolicy(
            max_attempts=max(1, settings.send_max_attempts),
            base_seconds=settings.send_backoff_base_seconds,
            cap_seconds=settings.send_backoff_max_seconds,
        )
        self._tokens = settings.page_token_map()
        self._default_token = settings.page_access_token.get_secret_value()
        self._app_secret = settings.app_secret.get_secret_value().encode()
        self._proofs: dict[str, str] = {}
        self._urls: dict[str, httpx.URL] = {}
        timeout = settings.send_timeout_seconds
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=min(timeout, 5.0), read=timeout, write=timeout, pool=timeout
            ),
            limits=httpx.Limits(
                max_connections=settings.send_max_connections,
                max_keepalive_connections=settings.send_max_connections,
                # Keep idle connections long enough to survive gaps between bursts.
                keepalive_expiry=60.0,
            ),
        )
        HTTPXClientInstrumentor.instrument_client(self._client, tracer_provider=tracer_provider)

    async def send(
        self,
        page_id: str,
        psid: str,
        message: dict[str, Any],
        *,
        messaging_type: str = "RESPONSE",
        tag: str | None = None,
    ) -> SendResult:
        """Send one message, retrying transient and throttled failures; never raises for HTTP."""
        token = self._tokens.get(page_id) or self._default_token
        if not token:
            self._metrics.send_requests.labels(outcome="permanent_error", error_code="other").inc()
            return SendResult(
                ok=False, error_class=ErrorClass.PERMANENT, attempts=0, error_label="no_token"
            )
        body: dict[str, Any] = {
            "recipient": {"id": psid},
            "messaging_type": messaging_type,
            "message": message,
        }
        if tag:
            body["tag"] = tag
        body["access_token"] = token
        secrets = [token]
        if self._settings.appsecret_proof:
            proof = self._proof(token)
            body["appsecret_proof"] = proof
            secrets.append(proof)
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        url = self._urls.get(page_id)
        if url is None:  # parsed once per page: URL parsing is a visible cost per request
            url = self._urls[page_id] = httpx.URL(self._settings.send_api_url(page_id))

        attempt = 0
        while True:
            attempt += 1
            result = await self._attempt(url, content, attempt, secrets, page_id)
            if result.ok or result.error_class is None:
                return result
            if not self._policy.should_retry(result.error_class, attempt):
                return result
            self._metrics.send_retries.labels(error_code=result.error_label).inc()
            await self._sleep(self._policy.delay(result.error_class, attempt))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _attempt(
        self, url: httpx.URL, content: bytes, attempt: int, secrets: list[str], page_id: str
    ) -> SendResult:
        started = time.perf_counter()
        try:
            response = await self._client.post(url, content=content, headers=_JSON_HEADERS)
        except httpx.TimeoutException as exc:
            detail = _redact(repr(exc), secrets)
            return self._failed(started, attempt, page_id, label="timeout", detail=detail)
        except httpx.HTTPError as exc:
            detail = _redact(repr(exc), secrets)
            return self._failed(started, attempt, page_id, label="network", detail=detail)

        status = response.status_code
        payload = _json_or_none(response.content)
        if 200 <= status < 300:
            elapsed = time.perf_counter() - started
            self._metrics.send_requests.labels(outcome="success", error_code="none").inc()
            self._metrics.send_duration.labels(outcome="success").observe(elapsed)
            message_id = payload.get("message_id") if isinstance(payload, dict) else None
            return SendResult(
                ok=True,
                message_id=message_id if isinstance(message_id, str) else None,
                http_status=status,
                attempts=attempt,
            )
        error = payload.get("error") if isinstance(payload, dict) else None
        code = subcode = None
        is_transient = False
        if isinstance(error, dict):
            code = _as_int(error.get("code"))
            subcode = _as_int(error.get("error_subcode"))
            is_transient = error.get("is_transient") is True
        if code is None:
            label = "http_5xx" if status >= 500 else "http_4xx"
        elif subcode is not None and str(subcode) in SEND_ERROR_CODES:
            label = str(subcode)  # the subcodes we alert on (outside window, no such user)
        else:
            label = error_code_label(code)
        detail = _redact(response.text[:_MAX_LOGGED_BODY], secrets)
        return self._failed(
            started,
            attempt,
            page_id,
            label=label,
            detail=detail,
            status=status,
            code=code,
            subcode=subcode,
            is_transient=is_transient,
        )

    def _failed(
        self,
        started: float,
        attempt: int,
        page_id: str,
        *,
        label: str,
        detail: str,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        is_transient: bool = False,
    ) -> SendResult:
        error_class = classify_graph_error(status, code, subcode, is_transient)
        outcome = "transient_error" if error_class.retryable else "permanent_error"
        self._metrics.send_requests.labels(outcome=outcome, error_code=label).inc()
        self._metrics.send_duration.labels(outcome=outcome).observe(time.perf_counter() - started)
        logger.warning(
            "Send API call failed: %s (%s)",
            label,
            error_class.value,
            extra={
                "log_type": "send_api",
                "page_id": page_id,
                "attempt": attempt,
                "http_status": status,
                "error_code": code,
                "error_subcode": subcode,
                "error_class": error_class.value,
                "detail": detail,
            },
        )
        return SendResult(
            ok=False,
            error_code=code,
            error_subcode=subcode,
            error_class=error_class,
            http_status=status,
            attempts=attempt,
            error_label=label,
        )

    def _proof(self, token: str) -> str:
        proof = self._proofs.get(token)
        if proof is None:
            proof = hmac.new(self._app_secret, token.encode(), hashlib.sha256).hexdigest()
            self._proofs[token] = proof
        return proof


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
