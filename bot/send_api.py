"""Send API client: bounded in-flight requests, Graph batching, bounded retries.

>>> api = HttpSendApi(settings, BotMetrics(registry), tracer_provider=provider)  # doctest: +SKIP
>>> result = await api.send("104501234567890", "6543210987654321", {"text": "hi"})  # doctest: +SKIP
>>> result.ok, result.message_id, result.attempts  # doctest: +SKIP
(True, 'm_...', 1)

The page token travels as ``access_token`` in the request body, never in the URL, so it
cannot leak through access logs, span ``url.full`` attributes or httpx exception texts.

Outcomes follow contracts §1: ``ok``; ``ErrorClass.RISKY`` when the request went out and its
answer was lost (never retried here); ``TRANSIENT``/``THROTTLED`` when Graph certainly did
not send it (retried here a bounded number of times); ``PERMANENT`` otherwise, including a
message that cannot be encoded, which fails alone before it can join a batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TracerProvider

from bot.coalescer import Coalescer
from bot.jsonlog import Redactor
from bot.metrics import BotMetrics
from bot.retry import ErrorClass, RetryPolicy
from bot.send_transport import SafeTransport, build_transport, failure_for
from bot.send_wire import (
    Answer,
    UnencodableCall,
    batch_body,
    batch_item,
    call_fields,
    decode_answer,
    decode_batch,
    encode_call,
    log_detail,
    lost_answer,
    single_body,
)
from bot.settings import BotSettings
from bot.tracing import prefer_stable_http_semconv
from bot.untraced import TraceIds, never_records

logger = logging.getLogger("bot.send_api")

_JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one ``send`` (after its retries).

    ``error_class`` is a ``bot.retry.ErrorClass`` value (``None`` on success): ``RISKY`` means
    the request went out and its answer was lost, so Graph may have delivered it (contracts
    §1). ``error_label`` is the bounded metric label (``"none"``, ``"190"``, ``"network"``,
    ``"reset"``, ``"malformed"``, ``"unencodable"``, ``"no_token"``...).
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
        sender_action: str | None = None,
        persona_id: str | None = None,
    ) -> SendResult: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Call:
    """One message on its way; ``attempt`` counts up as ``send`` retries it."""

    page_id: str
    token: str
    fields: dict[str, Any]
    encoded: bytes  # the fields as checked UTF-8 JSON, credentials not yet in
    attempt: int = 0
    # The caller's span, linked from a batch span when another call leads the batch.
    span_context: SpanContext | None = None


class HttpSendApi:
    """``SendApi`` over HTTP to Graph (or mock_meta at ``GRAPH_API_BASE``).

    At most ``SEND_API_MAX_IN_FLIGHT`` requests are in flight (httpx's pool costs more CPU
    per call as connections grow, see ``bench``). Calls made in the same event-loop iteration
    (the replies of one inbox commit), and calls that pile up behind busy slots, go out as
    Graph batch requests of up to ``SEND_API_BATCH_MAX`` calls per page token
    (``SEND_API_BATCH=false`` turns that off); a lone call goes to ``/{page_id}/messages``.
    Every call gets its own answer, error classification, retries and metrics either way.
    A batch of n calls gets ``SEND_API_TIMEOUT_SECONDS`` plus n times
    ``SEND_API_BATCH_CALL_TIMEOUT_SECONDS`` to answer. ``transport`` replaces the network
    (``httpx.MockTransport`` or an ``httpx.ASGITransport`` onto the mock in tests), else
    ``SEND_API_TRANSPORT`` picks one; ``sleep`` and ``retry_policy`` are injectable so retry
    tests run in milliseconds.
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
        # The success series, resolved once: labels() takes a lock and builds a key per call.
        self._succeeded = metrics.send_requests.labels(outcome="success", error_code="none")
        self._success_duration = metrics.send_duration.labels(outcome="success")
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
        # Every secret this client could send or quote, for logs and exception texts.
        tokens = {*self._tokens.values(), self._default_token} - {""}
        self._redact = Redactor(
            [
                *tokens,
                *(self._proof(t) for t in tokens),
                *(s.decode() for s in settings.app_secrets()),
            ]
        )
        self._urls: dict[str, httpx.URL] = {}
        base = settings.graph_api_base.rstrip("/")
        self._batch_url = httpx.URL(f"{base}/{settings.graph_api_version}/")
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        limit = max(1, min(settings.send_max_in_flight, settings.send_max_connections))
        self._lanes: Coalescer[_Call, Answer] = Coalescer(
            limit=limit,
            batch_max=settings.send_batch_max if settings.send_batch else 1,
            send_one=self._send_one,
            send_many=self._send_many,
            key=lambda call: call.token,
            # The leader was cancelled mid-request: the batch may have reached Graph.
            abandoned=lambda call: lost_answer("cancelled", "batch request cancelled"),
        )
        timeout = settings.send_timeout_seconds
        # The coalescer never has more than `limit` requests out: no pool queueing.
        limits = httpx.Limits(
            max_connections=limit,
            max_keepalive_connections=limit,
            # Keep idle connections long enough to survive gaps between bursts.
            keepalive_expiry=60.0,
        )
        self._transport = (
            SafeTransport(transport, self._redact)
            if transport
            else build_transport(settings.send_transport, limits, self._redact, base)
        )
        self._timeout = httpx.Timeout(
            connect=min(timeout, 5.0), read=timeout, write=timeout, pool=timeout
        ).as_dict()
        # The client owns the transport's lifecycle and is what the instrumentation hooks
        # (it wraps this transport's ``handle_async_request``). Requests go to the transport
        # directly: the client's per-request work (header and URL merging, cookie
        # extraction, redirect and auth handling) is about three times a whole call's CPU
        # otherwise, and none of it applies to a Graph POST.
        self._client = httpx.AsyncClient(transport=self._transport, limits=limits, trust_env=False)
        self._headers = {**self._client.headers, **_JSON_HEADERS}
        # Without recordable spans the instrumentation would only build placeholders (a
        # visible share of each request's CPU): the trace context is injected directly.
        self._trace_ids = TraceIds(self._tracer) if never_records(self._tracer) else None
        if self._trace_ids is None:
            prefer_stable_http_semconv()
            HTTPXClientInstrumentor.instrument_client(self._client, tracer_provider=tracer_provider)

    async def send(
        self,
        page_id: str,
        psid: str,
        message: dict[str, Any],
        *,
        messaging_type: str = "RESPONSE",
        tag: str | None = None,
        sender_action: str | None = None,
        persona_id: str | None = None,
    ) -> SendResult:
        """Send one message (or ``sender_action``), retrying transient and throttled failures;
        never raises for HTTP. ``persona_id`` goes top-level; ``message`` goes out unchanged."""
        token = self._tokens.get(page_id) or self._default_token
        if not token:
            return self._refused(page_id, "no_token", "other", "no page access token")
        fields = call_fields(
            psid, message, messaging_type, tag, sender_action=sender_action, persona_id=persona_id
        )
        try:
            encoded = encode_call(fields)
        except UnencodableCall as exc:
            return self._refused(page_id, "unencodable", "unencodable", str(exc))
        call = _Call(page_id, token, fields, encoded)
        while True:
            call.attempt += 1
            # If another call ends up leading our batch, its batch span links to our span.
            call.span_context = trace.get_current_span().get_span_context()
            answer = await self._lanes.submit(call)
            if answer.ok or answer.error_class is None:
                return _result(answer, call.attempt)
            if not self._policy.should_retry(answer.error_class, call.attempt):
                return _result(answer, call.attempt)
            self._metrics.send_retries.labels(error_code=answer.label).inc()
            await self._sleep(self._policy.delay(answer.error_class, call.attempt))

    @property
    def queued(self) -> int:
        """Calls waiting for a free request slot (they will go out in a batch)."""
        return self._lanes.queued

    async def aclose(self) -> None:
        await self._client.aclose()

    def _refused(self, page_id: str, label: str, error_code: str, reason: str) -> SendResult:
        """A call that cannot be made at all: permanent, counted and logged, nothing sent."""
        self._metrics.send_requests.labels(outcome="permanent_error", error_code=error_code).inc()
        logger.warning(
            "Send API call not made: %s",
            reason,
            extra={"log_type": "send_api", "page_id": page_id, "error_class": "permanent"},
        )
        return SendResult(ok=False, error_class=ErrorClass.PERMANENT, attempts=0, error_label=label)

    async def _send_one(self, call: _Call) -> Answer:
        url = self._urls.get(call.page_id)
        if url is None:  # parsed once per page: URL parsing is a visible cost per request
            url = self._urls[call.page_id] = httpx.URL(self._settings.send_api_url(call.page_id))
        credentials = self._credentials(call.token)
        started = time.perf_counter()
        answer = await self._post(url, single_body(call.encoded, credentials))
        if not isinstance(answer, Answer):
            answer = decode_answer(answer.status_code, answer.content)
        self._record(call, answer, time.perf_counter() - started)
        return answer

    async def _send_many(self, calls: list[_Call]) -> list[Answer]:
        """One Graph batch request for ``calls`` (all with the same token)."""
        credentials = self._credentials(calls[0].token)
        links = [trace.Link(c.span_context) for c in calls[1:] if c.span_context is not None]
        proof = credentials.get("appsecret_proof")
        items = [batch_item(c.page_id, c.fields, proof) for c in calls]
        content = batch_body(items, credentials)
        with self._tracer.start_as_current_span("send_api batch", links=links) as span:
            span.set_attribute("bot.send_api.batch_size", len(calls))
            started = time.perf_counter()
            response = await self._post(self._batch_url, content, self._batch_timeout(len(calls)))
            elapsed = time.perf_counter() - started
            if isinstance(response, Answer):  # no answer: the same outcome for every call
                answers = [response] * len(calls)
            else:
                answers = decode_batch(response.status_code, response.content, len(calls))
            # decode_batch repeats one Answer when the request failed as a whole: log it once.
            whole_failed = not answers[0].ok and all(a is answers[0] for a in answers)
            if whole_failed:
                span.set_status(StatusCode.ERROR, answers[0].label)
                self._log_failure(calls[0], answers[0], calls=len(calls))
        for call, answer in zip(calls, answers, strict=True):
            self._record(call, answer, elapsed, log=not whole_failed)
        return answers

    async def _post(
        self, url: httpx.URL, content: bytes, budget: dict[str, float | None] | None = None
    ) -> httpx.Response | Answer:
        """The response, its body read, or a transport-failure ``Answer`` (transient if
        nothing was written, risky if the answer was lost)."""
        request = httpx.Request(
            "POST",
            url,
            content=content,
            headers=self._headers if self._trace_ids is None else self._traced_headers(),
            extensions={"timeout": budget or self._timeout},
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            return failure_for(exc)
        return response

    def _traced_headers(self) -> dict[str, str]:
        """The caller's trace context under a fresh span id, as the HTTP instrumentation
        would inject it for a span that is never recorded (``OTEL_PROPAGATORS`` applies)."""
        assert self._trace_ids is not None
        parent = trace.get_current_span().get_span_context()
        client = NonRecordingSpan(self._trace_ids.child_of(parent))
        headers = dict(self._headers)
        propagate.inject(headers, context=trace.set_span_in_context(client))
        return headers

    def _batch_timeout(self, calls: int) -> dict[str, float | None]:
        """Graph answers a batch after its last part: the read budget grows with its size."""
        base = self._settings.send_timeout_seconds
        read = base + calls * self._settings.send_batch_call_timeout_seconds
        return httpx.Timeout(connect=min(base, 5.0), read=read, write=base, pool=base).as_dict()

    def _record(
        self,
        call: _Call,
        answer: Answer,
        elapsed: float,
        *,
        log: bool = True,
    ) -> None:
        """Per-call metrics (one call = one sample even inside a batch) and the failure log."""
        if answer.ok:
            self._succeeded.inc()
            self._success_duration.observe(elapsed)
            return
        outcome = _outcome(answer.error_class)
        self._metrics.send_requests.labels(outcome=outcome, error_code=answer.label).inc()
        self._metrics.send_duration.labels(outcome=outcome).observe(elapsed)
        if log:
            self._log_failure(call, answer)

    def _log_failure(self, call: _Call, answer: Answer, *, calls: int = 1) -> None:
        error_class = answer.error_class.value if answer.error_class else None
        logger.warning(
            "Send API call failed: %s (%s)%s",
            answer.label,
            error_class,
            f", whole batch of {calls}" if calls > 1 else "",
            extra={
                "log_type": "send_api",
                "page_id": call.page_id,
                "attempt": call.attempt,
                "http_status": answer.http_status,
                "error_code": answer.error_code,
                "error_subcode": answer.error_subcode,
                "error_class": error_class,
                "calls": calls,
                "detail": log_detail(answer.detail, self._redact),
            },
        )

    def _credentials(self, token: str) -> dict[str, str]:
        if not self._settings.appsecret_proof:
            return {"access_token": token}
        return {"access_token": token, "appsecret_proof": self._proof(token)}

    def _proof(self, token: str) -> str:
        proof = self._proofs.get(token)
        if proof is None:
            proof = hmac.new(self._app_secret, token.encode(), hashlib.sha256).hexdigest()
            self._proofs[token] = proof
        return proof


def _result(answer: Answer, attempts: int) -> SendResult:
    return SendResult(
        ok=answer.ok,
        message_id=answer.message_id,
        error_code=answer.error_code,
        error_subcode=answer.error_subcode,
        error_class=answer.error_class,
        http_status=answer.http_status,
        attempts=attempts,
        error_label=answer.label,
    )


def _outcome(error_class: ErrorClass | None) -> str:
    if error_class is ErrorClass.RISKY:
        return "uncertain_error"
    if error_class is not None and error_class.retryable:
        return "transient_error"
    return "permanent_error"
