"""The fast lane for ``POST /webhook``: the hot path without the framework's middleware stack.

Measured on this project's 2-core benchmark, FastAPI's middleware stack plus the generic OTel
ASGI instrumentation cost several times the work of the webhook itself. The app therefore
hands ``POST /webhook`` straight to this lane, which does only what that route needs: one
SERVER span (the parent of the per-event PRODUCER spans; an inbound ``traceparent`` is
honoured, like the instrumentation does), the two HTTP server metrics, and a last-resort 500
if the edge ever raised. Every other route still goes through FastAPI and its instrumentation.

When the tracer can never record (no exporter: ``bot.untraced``), the lane skips the span
object and only puts a span context in place, so logs still carry a trace id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation import set_span_in_context
from starlette.types import Message, Receive, Scope, Send

from bot.metrics import BotMetrics
from bot.tracing import span_context_from_traceparent, trace_id_exemplar
from bot.untraced import TraceIds, never_records
from bot.webhook import WebhookEdge

log = logging.getLogger("bot.webhook")

ROUTE = "/webhook"
_SPAN_NAME = f"POST {ROUTE}"
_INTERNAL_ERROR = b'{"error":"internal error"}'


class WebhookLane:
    """ASGI callable for ``POST /webhook`` with its own server span and HTTP metrics."""

    def __init__(self, edge: WebhookEdge, metrics: BotMetrics, tracer: Tracer) -> None:
        self._handle = edge.receive_events
        self._tracer = tracer
        self._ids = TraceIds(tracer) if never_records(tracer) else None
        self._active = metrics.http_active_requests.labels("POST")
        self._duration = metrics.http_request_duration
        self._by_status: dict[int, Any] = {}  # histogram children, one per status code seen

    @staticmethod
    def handles(scope: Scope) -> bool:
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._ids is not None:
            await self._untraced(scope, receive, send)
            return
        start = time.perf_counter()
        parent = _inbound_span_context(scope)
        span = self._tracer.start_span(
            _SPAN_NAME,
            context=set_span_in_context(NonRecordingSpan(parent)) if parent else None,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.route": ROUTE,
                "url.path": ROUTE,
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        self._active.inc()
        token = otel_context.attach(set_span_in_context(span))
        status = 0
        try:
            status = await self._handle(scope, receive, send)
        except Exception as exc:  # a bug: record it, and answer if nothing was sent yet
            span.record_exception(exc)
            status = await _internal_error(send)
        finally:
            otel_context.detach(token)
            self._active.dec()
            if status:
                span.set_attribute("http.response.status_code", status)
            if status >= 500 or status == 0:
                span.set_status(Status(StatusCode.ERROR))
            self._observe(status or 500, time.perf_counter() - start, trace_id_exemplar(span))
            span.end()

    async def _untraced(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same request without a span object: only its context, for log lines."""
        start = time.perf_counter()
        assert self._ids is not None
        span_context = self._ids.child_of(_inbound_span_context(scope))
        self._active.inc()
        token = otel_context.attach(set_span_in_context(NonRecordingSpan(span_context)))
        status = 0
        try:
            status = await self._handle(scope, receive, send)
        except Exception:
            status = await _internal_error(send)
        finally:
            otel_context.detach(token)
            self._active.dec()
            self._observe(status or 500, time.perf_counter() - start, None)

    def _observe(self, status: int, seconds: float, exemplar: dict[str, str] | None) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._duration.labels("POST", ROUTE, str(status))
        child.observe(seconds, exemplar)


def _inbound_span_context(scope: Scope) -> trace.SpanContext | None:
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return span_context_from_traceparent(value.decode("latin-1").strip().lower())
    return None


async def _internal_error(send: Send) -> int:
    """Log the exception being handled and answer 500; returns 0 if an answer had begun."""
    log.exception("webhook handler failed", extra={"log_type": "event"})
    try:
        await send(_start(500))
        await send({"type": "http.response.body", "body": _INTERNAL_ERROR})
    except Exception:  # the response had already started: nothing more can be said
        return 0
    return 500


def _start(status: int) -> Message:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(_INTERNAL_ERROR)),
    ]
    return {"type": "http.response.start", "status": status, "headers": headers}
