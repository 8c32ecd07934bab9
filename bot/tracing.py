"""Tracer provider from the standard ``OTEL_*`` variables, and trace-context helpers.

The edge stores each event's producer-span context as a W3C ``traceparent`` string in the
inbox row; a worker turns it back into a parent context and a span link.

>>> span = NonRecordingSpan(SpanContext(0xABC, 0x123, is_remote=False, trace_flags=TraceFlags(1)))
>>> traceparent = traceparent_of(span)  # the producer span's, stored with the event
>>> traceparent
'00-00000000000000000000000000000abc-0000000000000123-01'
>>> link = link_from_traceparent(traceparent)  # the consumer span links to it
>>> hex(link.context.span_id), link_from_traceparent("not a traceparent")
('0x123', None)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, TraceFlags
from opentelemetry.trace.propagation import set_span_in_context

from bot.settings import BotSettings

# Health and scrape endpoints would only add noise (and /metrics is scraped every few seconds).
EXCLUDED_URLS = "/metrics,/healthz,/readyz"
# Headers that must never be captured, whatever OTEL_INSTRUMENTATION_HTTP_CAPTURE_* asks for.
SENSITIVE_HEADERS = ["x-hub-signature-256", "x-hub-signature", "authorization", "cookie"]
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_SENSITIVE_QUERY = ("token", "secret", "proof")
# OTLP protocol -> the SDK's exporter entry-point name; only the HTTP exporter is a dependency.
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
# The stable HTTP semantic conventions (http.request.method, url.path...), not the old names.
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
STABLE_HTTP_SEMCONV = "http"


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable asks for something this installation cannot do."""


def trace_exporter_names(environ: Mapping[str, str]) -> list[str]:
    """Entry-point names of the span exporters that ``OTEL_TRACES_EXPORTER`` asks for.

    A comma-separated list; ``none`` exports nothing. ``otlp`` follows
    ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (default
    ``http/protobuf``, the exporter we install). Unset means ``otlp`` when an OTLP endpoint is
    configured, else nothing: without a collector every export would only log an error.

    >>> trace_exporter_names({"OTEL_TRACES_EXPORTER": "console,otlp"})
    ['console', 'otlp_proto_http']
    >>> trace_exporter_names({})
    []
    """
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        raw = "otlp" if endpoint else "none"
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if "none" in names:
        return []
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    resolved = []
    for name in names:
        if name == "otlp":
            if protocol not in _OTLP_BY_PROTOCOL:
                raise TracingConfigError(f"unsupported OTLP protocol {protocol!r}")
            name = _OTLP_BY_PROTOCOL[protocol]
        resolved.append(name)
    return resolved


def build_tracer_provider(default_service_name: str) -> TracerProvider:
    """A provider configured by the standard ``OTEL_*`` variables, read as the SDK reads them.

    ``OTEL_TRACES_EXPORTER`` picks the exporters (see ``trace_exporter_names``; each loaded
    from the SDK's ``opentelemetry_traces_exporter`` entry points, so any installed exporter
    works); ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` make the resource, with
    ``default_service_name`` only when neither names the service; ``OTEL_TRACES_SAMPLER`` /
    ``_ARG`` the sampler; ``OTEL_BSP_*`` the batch processor; ``OTEL_SDK_DISABLED=true``
    exports nothing. With no exporter nothing could read a span, so the sampler is
    ``always_off`` (ids still reach the logs) unless ``OTEL_TRACES_SAMPLER`` is set.
    """
    environ = os.environ
    prefer_stable_http_semconv()
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    exporters = [] if disabled else [_load_exporter(n) for n in trace_exporter_names(environ)]
    if not exporters and not environ.get("OTEL_TRACES_SAMPLER"):
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    provider = TracerProvider(resource=resource)  # the SDK reads OTEL_TRACES_SAMPLER itself
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def prefer_stable_http_semconv() -> None:
    """Make the HTTP instrumentations emit only the stable semantic conventions.

    They read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process, at the first instrumentation,
    and otherwise emit the old names (``http.method``) beside ours. An explicit value wins.
    """
    os.environ.setdefault(SEMCONV_OPT_IN, STABLE_HTTP_SEMCONV)


def user_attributes(psid: str | None, *, hash_key: bytes | None) -> dict[str, str]:
    """Span attributes naming the user: ``user.hash`` by default, ``user.id`` when not hashing.

    The hash is a keyed HMAC-SHA256 (truncated), so the same user correlates across spans
    while a PSID, a 16-digit number, cannot be recovered by hashing every candidate.

    >>> user_attributes("6543210987654321", hash_key=b"k")
    {'user.hash': 'fdcf579c813a8e50df6da7b4'}
    >>> user_attributes("6543210987654321", hash_key=None)
    {'user.id': '6543210987654321'}
    >>> user_attributes(None, hash_key=b"k")
    {}
    """
    if not psid:
        return {}
    if hash_key is None:
        return {"user.id": psid}
    digest = hmac.new(hash_key, psid.encode(), hashlib.sha256).hexdigest()
    return {"user.hash": digest[:24]}


def user_hash_key(settings: BotSettings) -> bytes | None:
    """The key ``user_attributes`` hashes with: the app secret, or None for raw ids.

    Keyed by a secret the bot already has, so hashes stay stable across restarts and replicas.
    """
    if settings.trace_user_ids == "raw":
        return None
    return settings.app_secret.get_secret_value().encode()


def _load_exporter(name: str) -> SpanExporter:
    found = entry_points(group=_EXPORTER_GROUP, name=name)
    if not found:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER asks for span exporter {name!r}, which is not installed"
        )
    exporter_class = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter


def instrument_app(app: FastAPI, tracer_provider: trace.TracerProvider) -> None:
    """Server spans for every route except health and metrics, without ASGI message spans."""
    prefer_stable_http_semconv()
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
