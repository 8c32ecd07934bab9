"""Tracer provider from the standard ``OTEL_*`` variables, and trace-context helpers.

The edge stores each event's producer-span context as a W3C ``traceparent`` string in the
inbox row; a worker turns it back into a parent context and a span link.

>>> traceparent = traceparent_of(span)  # "00-<32 hex>-<16 hex>-01"  # doctest: +SKIP
>>> link = link_from_traceparent(traceparent)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, TraceFlags
from opentelemetry.trace.propagation import set_span_in_context

# Health and scrape endpoints would only add noise (and /metrics is scraped every few seconds).
EXCLUDED_URLS = "/metrics,/healthz,/readyz"
# Headers that must never be captured, whatever OTEL_INSTRUMENTATION_HTTP_CAPTURE_* asks for.
SENSITIVE_HEADERS = ["x-hub-signature-256", "x-hub-signature", "authorization", "cookie"]
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_SENSITIVE_QUERY = ("token", "secret", "proof")


def otlp_requested(environ: Mapping[str, str]) -> bool:
    """True when the standard variables ask for OTLP trace export."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return "otlp" in {e.strip() for e in exporter.split(",")}
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def build_tracer_provider(
    service_name: str, *, environ: Mapping[str, str] | None = None
) -> TracerProvider:
    """A provider with an OTLP/HTTP exporter only when ``OTEL_*`` asks for one.

    Without an exporter, spans are not recorded (sampler ``always_off``) but still carry
    trace ids for logs. ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` override
    ``service_name``; ``OTEL_TRACES_SAMPLER`` is honoured.
    """
    env = os.environ if environ is None else environ
    resource = Resource.create({SERVICE_NAME: service_name})
    if not otlp_requested(env):
        # Nothing would ever read a recorded span: keep ids (logs, stored traceparents) but
        # record nothing, unless OTEL_TRACES_SAMPLER asks for something else.
        sampler = None if env.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
        return TracerProvider(resource=resource, sampler=sampler)
    # Imported here: the exporter pulls in protobuf, which a plain run does not need.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def instrument_app(app: FastAPI, tracer_provider: trace.TracerProvider) -> None:
    """Server spans for every route except health and metrics, without ASGI message spans."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
        server_request_hook=_redact_server_span,
        http_capture_headers_sanitize_fields=SENSITIVE_HEADERS,
    )


def traceparent_of(span: Span) -> str | None:
    """The W3C ``traceparent`` of ``span``, or None when its context is invalid."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def span_context_from_traceparent(traceparent: str | None) -> SpanContext | None:
    """Parse a stored ``traceparent``; None when absent or malformed."""
    match = _TRACEPARENT.match(traceparent or "")
    if match is None:
        return None
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """A context whose parent is the stored span (use as ``context=`` when starting a span)."""
    span_context = span_context_from_traceparent(traceparent)
    if span_context is None:
        return None
    return set_span_in_context(NonRecordingSpan(span_context))


def link_from_traceparent(traceparent: str | None) -> Link | None:
    """A span link to the stored creation context (consumer spans link to their producer)."""
    span_context = span_context_from_traceparent(traceparent)
    return None if span_context is None else Link(span_context)


def trace_id_exemplar(span: Span | None = None) -> dict[str, str] | None:
    """``{"trace_id": ...}`` for a Prometheus exemplar, or None when unsampled/invalid."""
    ctx = (span or trace.get_current_span()).get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return {"trace_id": trace.format_trace_id(ctx.trace_id)}


def _redact_server_span(span: Span, scope: dict[str, Any]) -> None:
    # The ASGI instrumentation copies the query string into http.url / url.query, and the
    # handshake's query carries hub.verify_token: overwrite those attributes redacted.
    query = scope.get("query_string") or b""
    if not span.is_recording() or not query:
        return
    text = query.decode("latin-1")
    if not any(word in text.lower() for word in _SENSITIVE_QUERY):
        return
    redacted = urlencode(
        [
            (key, "REDACTED" if any(w in key.lower() for w in _SENSITIVE_QUERY) else value)
            for key, value in parse_qsl(text, keep_blank_values=True)
        ]
    )
    attributes = getattr(span, "attributes", None) or {}
    if "url.query" in attributes:
        span.set_attribute("url.query", redacted)
    if "http.url" in attributes:
        base = str(attributes["http.url"]).split("?", 1)[0]
        span.set_attribute("http.url", f"{base}?{redacted}")
