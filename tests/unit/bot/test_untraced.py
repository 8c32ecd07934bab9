"""Which tracers can never record, and span contexts made without spans."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanContext, TraceFlags

from bot.untraced import TraceIds, never_records


def test_only_no_op_and_always_off_tracers_never_record() -> None:
    assert never_records(TracerProvider(sampler=ALWAYS_OFF).get_tracer("t"))
    assert never_records(trace.NoOpTracerProvider().get_tracer("t"))
    assert not never_records(TracerProvider().get_tracer("t"))
    # A sampled caller makes a parent-based sampler record, whatever its root decision.
    assert not never_records(TracerProvider(sampler=ParentBased(ALWAYS_OFF)).get_tracer("t"))


def test_a_child_context_keeps_the_callers_trace_and_flags() -> None:
    ids = TraceIds(TracerProvider(sampler=ALWAYS_OFF).get_tracer("t"))
    caller = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xF067AA0BA902B7, True, TraceFlags(1))
    child = ids.child_of(caller)
    assert (child.trace_id, child.trace_flags) == (caller.trace_id, caller.trace_flags)
    assert child.span_id not in (0, caller.span_id) and child.is_valid


def test_without_a_caller_each_context_starts_a_new_unsampled_trace() -> None:
    ids = TraceIds(trace.NoOpTracerProvider().get_tracer("t"))
    first, second = ids.child_of(None), ids.child_of(None)
    assert first.is_valid and second.is_valid
    assert first.trace_id != second.trace_id
    assert not first.trace_flags.sampled
