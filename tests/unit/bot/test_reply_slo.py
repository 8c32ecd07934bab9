"""Each event owing a reply counts once toward the reply SLO: met, or missed when it passed."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter

from bot.reply_slo import ReplySlo


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _slo(clock: FakeClock) -> tuple[ReplySlo, CollectorRegistry]:
    registry = CollectorRegistry()
    counter = Counter("slo_events_total", "test", ["result"], registry=registry)
    return ReplySlo(counter, slo_seconds=5.0, clock=clock), registry


def _count(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value("slo_events_total", {"result": result}) or 0.0


async def test_a_reply_within_the_slo_is_met_once() -> None:
    clock = FakeClock()
    slo, registry = _slo(clock)
    slo.expect("e1", since=clock.now - 1)
    slo.expect("e1", since=clock.now - 1)  # a handler retry: still one event
    slo.replied("e1")
    slo.replied("e1")
    assert (_count(registry, "met"), _count(registry, "missed"), slo.pending) == (1, 0, 0)


async def test_an_event_already_past_the_slo_is_missed_without_any_reply() -> None:
    clock = FakeClock()
    slo, registry = _slo(clock)
    slo.expect("late", since=clock.now - 60)  # waited in a backlog
    for _ in range(3):
        await asyncio.sleep(0)  # let the loop run the due timer
    assert (_count(registry, "missed"), slo.pending) == (1, 0)
    slo.replied("late")  # the late reply counts nothing more
    assert (_count(registry, "met"), _count(registry, "missed")) == (0, 1)


async def test_a_reply_after_the_deadline_is_missed_even_if_the_loop_was_too_busy_to_notice() -> (
    None
):
    clock = FakeClock()
    slo, registry = _slo(clock)
    slo.expect("e1", since=clock.now)
    clock.now += 6  # the timer has not run: the loop was blocked
    slo.replied("e1")
    assert (_count(registry, "met"), _count(registry, "missed")) == (0, 1)
