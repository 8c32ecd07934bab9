"""Trace ids without spans, for when no span can ever be recorded.

Without an OTLP exporter the bot's provider samples nothing (``always_off``): every span is a
non-recording placeholder whose only use is the trace id in log lines. Creating, attaching
and ending those placeholders per request and per event was a measurable share of the ack
path, so the hot paths ask ``never_records`` once and then only carry a ``SpanContext``
(the caller's trace id when a ``traceparent`` came in, else a fresh one).

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
>>> never_records(TracerProvider(sampler=ALWAYS_OFF).get_tracer("bot"))
True
>>> never_records(TracerProvider(sampler=ParentBased(ALWAYS_OFF)).get_tracer("bot"))
False
"""

from __future__ import annotations

import random

from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, TraceFlags

_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


def never_records(tracer: trace.Tracer) -> bool:
    """True when ``tracer`` cannot record a span whatever the parent (no-op or always_off).

    A parent-based or ratio sampler may record, so only these two exact cases count.
    """
    if isinstance(tracer, trace.NoOpTracer):
        return True
    return isinstance(tracer, SdkTracer) and tracer.sampler is ALWAYS_OFF


class TraceIds:
    """Makes span contexts the way ``tracer`` would (its id generator), without spans."""

    def __init__(self, tracer: trace.Tracer) -> None:
        generator = getattr(tracer, "id_generator", None)
        self._trace_id = generator.generate_trace_id if generator else _random_trace_id
        self._span_id = generator.generate_span_id if generator else _random_span_id

    def child_of(self, parent: SpanContext | None) -> SpanContext:
        """A new span id in ``parent``'s trace (flags kept), or in a new unsampled trace."""
        if parent is not None and parent.is_valid:
            return SpanContext(
                parent.trace_id, self._span_id(), False, parent.trace_flags, parent.trace_state
            )
        return SpanContext(self._trace_id(), self._span_id(), False, _UNSAMPLED)


def _random_trace_id() -> int:
    return random.getrandbits(128) or 1


def _random_span_id() -> int:
    return random.getrandbits(64) or 1
