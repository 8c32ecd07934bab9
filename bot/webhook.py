"""The HTTP edge: ``GET/POST /webhook``, ``/healthz``, ``/readyz`` and ``/metrics``.

``POST /webhook`` is the hot path and a raw ASGI endpoint (no request object, no dependency
injection): cap the body, verify the signature on the raw bytes, decode, parse, store durably
in one group-committed ``enqueue`` (the only await), hand the stored events to the worker
pool and answer ``200 EVENT_RECEIVED``. Every rejection is a 4xx with a short JSON reason; an
inbox failure is a 503 so Meta delivers again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, get_current_span
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from bot.event_time import Arrival, TimeFix
from bot.events import EventKind, InboundEvent, PayloadError, parse_envelope
from bot.inbox import Inbox, InboxRecord, StoredEvent
from bot.inbox_guard import InboxFileGuard
from bot.metrics import BotMetrics
from bot.settings import BotSettings
from bot.signature import SignatureVerifier
from bot.tracing import traceparent_of
from bot.untraced import never_records

log = logging.getLogger("bot.webhook")

INBOUND_DESTINATION = "bot.inbound"
_ACK = b"EVENT_RECEIVED"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_PROBE_TIMEOUT_SECONDS = 2.0
# Enum ``.value`` is a descriptor call; a dict lookup is several times cheaper on the hot path.
_KIND_VALUES = {kind: kind.value for kind in EventKind}


class EventSink(Protocol):
    """What the edge needs from the worker pool."""

    def submit(self, events: list[StoredEvent]) -> None: ...

    def note_ack(self, seconds: float, total: float) -> None:
        """How long a ``POST /webhook`` took to answer: ``seconds`` with its commit wait left
        out (the workers yield to acks the event loop made slow), ``total`` all of it (the
        workers catch up on a backlog only while acks stay fast)."""

    @property
    def running(self) -> bool: ...


class _ClientGone(Exception):
    """The client disconnected before sending the whole body."""


class WebhookEdge:
    """The edge's routes and state; the app's lifespan ``attach``-es the inbox and pool."""

    def __init__(self, settings: BotSettings, metrics: BotMetrics, tracer: Tracer) -> None:
        self.metrics = metrics
        self.inbox: Inbox | None = None
        self.pool: EventSink | None = None
        self.inbox_guard: InboxFileGuard | None = None
        self._tracer = tracer
        self._untraced = never_records(tracer)
        self._signatures = SignatureVerifier(settings.app_secrets())
        self._verify_token = settings.verify_token.get_secret_value().encode()
        self._max_body = settings.max_body_bytes
        self._max_events = settings.max_events_per_post
        self._future_tolerance_ms = int(settings.event_future_tolerance_seconds * 1000)
        # Label children resolved once: labels() costs a lock and a tuple per call.
        self._received = {k: metrics.events_received.labels(k.value) for k in EventKind}
        self._duplicates = {k: metrics.duplicates.labels(k.value) for k in EventKind}
        self._time_fixes = {f: metrics.timestamps_adjusted.labels(f.value) for f in TimeFix}

    def attach(
        self, inbox: Inbox, pool: EventSink, inbox_guard: InboxFileGuard | None = None
    ) -> None:
        """``inbox_guard`` watches a file-backed inbox (see ``bot.inbox_guard``)."""
        self.inbox, self.pool, self.inbox_guard = inbox, pool, inbox_guard

    def detach(self) -> None:
        self.inbox = self.pool = self.inbox_guard = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/webhook", self.verify, methods=["GET"], name="webhook_verify"),
            # A class instance endpoint is mounted as plain ASGI (no Request/Response layer).
            Route("/webhook", _AsgiEndpoint(self), methods=["POST"], name="webhook_events"),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.render_metrics, methods=["GET"]),
        ]

    # --- GET /webhook: the subscription handshake -------------------------------------------

    async def verify(self, request: Request) -> Response:
        params = request.query_params
        mode, token = params.get("hub.mode"), params.get("hub.verify_token")
        challenge = params.get("hub.challenge")
        if mode is None or token is None or challenge is None:
            result, reason = (
                "missing_params",
                "hub.mode, hub.verify_token and hub.challenge required",
            )
        elif mode != "subscribe":
            result, reason = "bad_mode", "hub.mode must be subscribe"
        elif not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._verify_token):
            result, reason = "token_mismatch", "verify token mismatch"
        else:
            result, reason = "success", ""
        self.metrics.handshakes.labels(result).inc()
        log.info("webhook handshake %s", result, extra={"log_type": "handshake", "result": result})
        if result != "success":
            return JSONResponse({"error": reason}, status_code=403)
        assert challenge is not None
        return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})

    # --- POST /webhook: events -----------------------------------------------------------

    async def receive_events(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Handle one ``POST /webhook``; returns the status answered (0: the client left)."""
        start = time.perf_counter()
        declared: bytes | None = None
        signature: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"x-hub-signature-256":
                signature = value
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return await self._reject(send, 413, "too_large", "body too large")
        try:
            body = await self._read_body(receive)
        except _ClientGone:
            return 0
        if body is None:
            return await self._reject(send, 413, "too_large", "body too large")

        check = self._signatures.check(body, signature.decode("latin-1") if signature else None)
        if not check.ok:
            assert check.reason is not None
            self.metrics.signature_failures.labels(check.reason).inc()
            return await self._reject(send, 401, "bad_signature", check.reason)
        try:
            # Strict UTF-8 first: json.loads(bytes) would guess UTF-16/32 from the bytes.
            envelope = _DECODER.decode(body.decode("utf-8"))
        except (ValueError, RecursionError):
            return await self._reject(send, 400, "invalid_json", "invalid JSON body")
        now = time.time()
        arrival = Arrival(int(now * 1000), self._future_tolerance_ms)
        try:
            events = parse_envelope(envelope, max_events=self._max_events, arrival=arrival)
            _check_storable(events)
        except PayloadError as exc:
            reason = _PAYLOAD_REJECTS.get(exc.status, "bad_shape")
            return await self._reject(send, exc.status, reason, exc.reason)
        except RecursionError:
            return await self._reject(send, 400, "bad_shape", "payload nested too deeply")
        self._note_time_fixes(events)
        return await self._store(send, events, start, now)

    def _note_time_fixes(self, events: list[InboundEvent]) -> None:
        """Count every normalised timestamp; log the ones replaced by the arrival time."""
        for event in events:
            fix = event.time_fix
            if fix is None:
                continue
            self._time_fixes[fix].inc()
            if fix is not TimeFix.SECONDS:
                log.info(
                    "event timestamp replaced by the arrival time (%s)",
                    fix.value,
                    extra={
                        "log_type": "event",
                        "event_type": _KIND_VALUES[event.kind],
                        "reason": fix.value,
                    },
                )

    async def _store(self, send: Send, events: list[InboundEvent], start: float, now: float) -> int:
        if not events:
            return await _respond(send, 200, _ACK, _TEXT)
        if self._untraced:
            # No span can be recorded: every event keeps the request's context, for logs.
            traceparent = traceparent_of(get_current_span())
            records = [_record(e, traceparent, now) for e in events]
            enqueued = time.perf_counter()
            stored = await self._enqueue(records)
        else:
            spans = [
                self._tracer.start_span(
                    f"send {INBOUND_DESTINATION}",
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "bot_inbox",
                        "messaging.operation.name": "send",
                        "messaging.operation.type": "send",
                        "messaging.destination.name": INBOUND_DESTINATION,
                        "bot.event.kind": _KIND_VALUES[event.kind],
                    },
                )
                for event in events
            ]
            # The producer span's context is each event's creation context (stored with it).
            records = [
                _record(e, traceparent_of(s), now) for e, s in zip(events, spans, strict=True)
            ]
            enqueued = time.perf_counter()
            stored = await self._enqueue(records)
            _end_producer_spans(spans, stored)
        guard = self.inbox_guard
        if guard is not None and not guard.intact_after_commit():
            # Committed into a deleted or replaced file (or failed on it): lost at restart, so
            # Meta must deliver again. Checked after the commit, so nothing slips in between.
            return await _respond(send, 503, b'{"error":"inbox file lost"}', _JSON)
        if stored is None:
            return await _respond(send, 503, b'{"error":"inbox unavailable"}', _JSON)
        committed = time.perf_counter()
        self._count_and_submit(events, stored)
        status = await _respond(send, 200, _ACK, _TEXT)
        if self.pool is not None:
            # The workers yield to acks the loop made slow. The commit's own wait (the disk,
            # and its jitter when other processes write) is left out: fewer events in
            # progress cannot shorten it, and counting it pinned the workers to their floor.
            total = time.perf_counter() - start
            self.pool.note_ack(total - (committed - enqueued), total)
        return status

    async def _enqueue(self, records: list[InboxRecord]) -> list[StoredEvent | None] | None:
        """Store durably; None when the inbox failed (logged), so Meta must deliver again."""
        inbox = self.inbox
        try:
            if inbox is None:
                raise RuntimeError("inbox not attached (starting or stopping)")
            return await inbox.enqueue(records)
        except Exception as exc:  # any storage failure becomes a 503
            log.error(
                "inbox enqueue failed: %s",
                exc,
                extra={"log_type": "event", "error_type": type(exc).__name__},
            )
            return None

    def _count_and_submit(
        self, events: list[InboundEvent], stored: list[StoredEvent | None]
    ) -> None:
        fresh: list[StoredEvent] = []
        for event, item in zip(events, stored, strict=True):
            if item is None:
                self._duplicates[event.kind].inc()
                log.info(
                    "duplicate event skipped",
                    extra={"log_type": "event", "event_type": _KIND_VALUES[event.kind]},
                )
            else:
                self._received[event.kind].inc()
                fresh.append(item)
        if fresh and self.pool is not None:
            # Stored is what matters for the ack; a pool problem must not turn it into a 5xx.
            try:
                self.pool.submit(fresh)
            except Exception:
                log.exception("worker pool refused events", extra={"log_type": "event"})

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it grows past the cap (nothing more is read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _reject(self, send: Send, status: int, label: str, reason: str) -> int:
        self.metrics.rejected.labels(label).inc()
        log.warning(
            "webhook rejected: %s",
            reason,
            extra={"log_type": "event", "reason": label, "status": status},
        )
        body = json.dumps({"error": reason}).encode()
        # A 413 is answered before the body is read: closing (gently, see bot.http_guard)
        # bounds what a huge upload costs, instead of parsing all of it to keep the connection.
        return await _respond(send, status, body, _JSON, close=status == 413)

    # --- probes and metrics ----------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        inbox, pool = self.inbox, self.pool
        if inbox is None or pool is None:
            return _unready("starting or stopping")
        if not pool.running:
            return _unready("workers not running")
        try:
            await asyncio.wait_for(inbox.ping(), _PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # readiness reports any failure; it never raises
            log.warning("inbox ping failed: %s", exc, extra={"log_type": "probe"})
            return _unready("inbox unavailable")
        guard = self.inbox_guard
        if guard is not None:
            if not guard.intact():
                return _unready(guard.lost_reason or "inbox file lost")
            try:
                # A real write: a full or read-only disk fails here, not only in every webhook.
                probe = asyncio.to_thread(guard.probe_write)
                await asyncio.wait_for(probe, _PROBE_TIMEOUT_SECONDS)
            except (OSError, TimeoutError) as exc:
                log.warning("inbox disk write probe failed: %s", exc, extra={"log_type": "probe"})
                return _unready("inbox disk not writable")
        return JSONResponse({"status": "ready"})

    async def render_metrics(self, request: Request) -> Response:
        await self._refresh_inbox_gauges()
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(self.metrics.registry), media_type=content_type)

    async def _refresh_inbox_gauges(self) -> None:
        if self.inbox is None:
            return
        try:
            stats = await asyncio.wait_for(self.inbox.stats(), _PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # a scrape still gets every other metric
            log.warning("inbox stats failed: %s", exc, extra={"log_type": "probe"})
            return
        oldest = stats.oldest_pending_received_at
        self.metrics.inbox_depth.set(stats.pending)
        self.metrics.inbox_oldest_age.set(max(0.0, time.time() - oldest) if oldest else 0.0)
        self.metrics.dead_letters_stored.set(stats.dead_letters)


class _AsgiEndpoint:
    """Adapts ``WebhookEdge.receive_events`` to Starlette's ASGI-app endpoint form."""

    def __init__(self, edge: WebhookEdge) -> None:
        self._edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._edge.receive_events(scope, receive, send)


def _end_producer_spans(spans: list[Span], stored: list[StoredEvent | None] | None) -> None:
    for index, span in enumerate(spans):
        item = stored[index] if stored is not None else None
        if stored is None:
            span.set_status(Status(StatusCode.ERROR, "inbox unavailable"))
        elif item is None:
            span.set_attribute("bot.duplicate", True)
        else:
            span.set_attribute("messaging.message.id", str(item.id))
        span.end()


def _check_storable(events: list[InboundEvent]) -> None:
    # JSON escapes can produce lone surrogates ("\\ud800"): valid str, not storable UTF-8.
    for event in events:
        for text in (event.page_id, event.user_id or "", event.dedup_key):
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise PayloadError("ids must be valid unicode") from None


def _record(event: InboundEvent, traceparent: str | None, received_at: float) -> InboxRecord:
    return InboxRecord(
        page_id=event.page_id,
        sender_key=event.user_id or "",
        kind=_KIND_VALUES[event.kind],
        timestamp_ms=event.timestamp_ms,
        dedup_key=event.dedup_key,
        payload=_ENCODER.encode(event.raw),
        traceparent=traceparent,
        received_at=received_at,
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# PayloadError statuses -> bot_webhook_requests_rejected_total{reason}.
_PAYLOAD_REJECTS = {404: "wrong_object", 413: "too_many_events"}
# Built once: json.loads/dumps with keyword arguments construct a new codec on every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constants)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _unready(reason: str) -> Response:
    return JSONResponse({"status": "unready", "reason": reason}, status_code=503)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, *, close: bool = False
) -> int:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


__all__: Sequence[str] = ("INBOUND_DESTINATION", "EventSink", "WebhookEdge")
