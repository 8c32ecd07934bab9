"""Admission control: the bound follows the finishing rate, the gate feeds it from the engine."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from bot.admission import Admission
from bot.edge_admission import AdmissionGate
from bot.metrics import BotMetrics


def test_a_cold_bot_admits_up_to_the_floor() -> None:
    gate = Admission(limit_seconds=2.0, floor_events=300)
    assert gate.admits(backlog=299)
    assert not gate.admits(backlog=300)
    assert gate.observe(completed=0, now=10.0) == 300  # no rate yet: the floor


def test_the_bound_is_limit_seconds_of_the_recent_finishing_rate() -> None:
    gate = Admission(limit_seconds=2.0, floor_events=100, window_seconds=2.0)
    # 600 events/s finished, sampled every 0.1 s for 3 s.
    for tick in range(31):
        bound = gate.observe(completed=60 * tick, now=tick / 10)
    assert round(gate.rate) == 600
    assert bound == 1200
    assert gate.admits(backlog=1199) and not gate.admits(backlog=1200)


def test_the_rate_forgets_what_is_older_than_the_window() -> None:
    gate = Admission(limit_seconds=1.0, floor_events=50, window_seconds=1.0)
    completed = 0
    for tick in range(20):  # 1,000/s for 2 s
        completed += 100
        gate.observe(completed=completed, now=tick / 10)
    for tick in range(20, 40):  # then 200/s for 2 s: the bound follows within the window
        completed += 20
        bound = gate.observe(completed=completed, now=tick / 10)
    assert round(gate.rate) == 200
    assert bound == 200


def test_a_stalled_engine_falls_back_to_the_floor() -> None:
    gate = Admission(limit_seconds=2.0, floor_events=100, window_seconds=1.0)
    for tick in range(11):
        gate.observe(completed=50 * tick, now=tick / 10)
    assert gate.bound == 1000
    for tick in range(11, 30):  # nothing finishes any more
        gate.observe(completed=500, now=tick / 10)
    assert gate.bound == 100


def test_zero_seconds_turns_refusing_off() -> None:
    gate = Admission(limit_seconds=0, floor_events=1)
    gate.observe(completed=0, now=0.0)
    assert not gate.enabled
    assert gate.admits(backlog=10**9)


def test_retry_after_is_the_limit_rounded_up_to_whole_seconds() -> None:
    assert Admission(limit_seconds=2.5, floor_events=1).refusal.retry_after_seconds == 3
    assert Admission(limit_seconds=0.2, floor_events=1).refusal.retry_after_seconds == 1


@dataclass
class _Engine:
    backlog: int = 0
    completed: int = 0
    replies_ready: int = 0
    replies_settled: int = 0
    overloaded: bool = False

    def set_overloaded(self, overloaded: bool) -> None:
        self.overloaded = overloaded


def _gate(limit_seconds: float = 1.0, floor: int = 10) -> tuple[AdmissionGate, BotMetrics]:
    metrics = BotMetrics(CollectorRegistry())
    admission = Admission(limit_seconds=limit_seconds, floor_events=floor, window_seconds=1.0)
    return AdmissionGate(admission, metrics), metrics


def _sample(metrics: BotMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_the_gate_refuses_over_the_bound_counts_it_and_tells_the_engine() -> None:
    gate, metrics = _gate(floor=10)
    engine = _Engine(backlog=5)
    assert not gate.refuses()  # no engine attached yet: starting up, never refuse
    gate.attach(engine)
    gate.tick(0.0)
    assert not gate.refuses() and not engine.overloaded
    engine.backlog = 10
    assert gate.refuses()
    gate.tick(0.1)
    assert engine.overloaded
    assert _sample(metrics, "bot_webhook_refused_total", reason="overloaded") == 1
    # Also a 503 of the route, for the webhook 5xx ratio and its alert.
    http = {"http_request_method": "POST", "http_route": "/webhook"}
    assert (
        _sample(
            metrics,
            "http_server_request_duration_seconds_count",
            **http,
            http_response_status_code="503",
        )
        == 1
    )
    assert _sample(metrics, "bot_webhook_backlog_events") == 10
    assert _sample(metrics, "bot_webhook_backlog_limit_events") == 10
    engine.backlog, engine.completed = 3, 100  # 100 finished since 0.0: 500/s, bound 500
    gate.tick(0.2)
    assert not engine.overloaded and not gate.refuses()
    assert _sample(metrics, "bot_webhook_backlog_limit_events") == 500


def test_a_gate_turned_off_never_refuses_or_ticks() -> None:
    gate, metrics = _gate(limit_seconds=0)
    engine = _Engine(backlog=10**6)
    gate.attach(engine)
    gate.tick(0.0)
    assert not gate.refuses() and not engine.overloaded
    assert _sample(metrics, "bot_webhook_refused_total", reason="overloaded") == 0


def test_the_gate_bounds_the_wait_through_handlers_and_replies_together() -> None:
    # Handlers finish 500 events/s, replies settle at 200/s, the limit is one second: an event
    # behind 250 unhandled events and 100 unsent replies waits 0.5 s + 0.5 s.
    gate, metrics = _gate(limit_seconds=1.0, floor=10)
    engine = _Engine()
    gate.attach(engine)
    gate.tick(0.0)
    engine.completed, engine.replies_settled = 500, 200
    gate.tick(1.0)
    assert _sample(metrics, "bot_webhook_backlog_limit_events") == 500
    assert _sample(metrics, "bot_webhook_reply_backlog_limit_replies") == 200
    engine.backlog, engine.replies_ready = 250, 99
    assert not gate.refuses()
    engine.replies_ready = 100
    assert gate.refuses()
    engine.backlog = 0  # handlers keep up, but the replies alone are over their bound
    engine.replies_ready = 200
    assert gate.refuses()
    gate.tick(1.1)
    assert engine.overloaded
    assert _sample(metrics, "bot_webhook_reply_backlog_replies") == 200


def test_replies_waiting_on_graph_never_make_the_gate_refuse() -> None:
    # A Send API outage: nothing settles and replies pile up in back-off. Refusing would only
    # make Meta deliver again into the same wait (and risk the subscription being disabled).
    gate, metrics = _gate(limit_seconds=1.0, floor=10)
    # The engine counts none of the 5,000 as ready (tests/unit/bot/test_engine.py).
    engine = _Engine(replies_ready=0)
    gate.attach(engine)
    gate.tick(0.0)
    gate.tick(1.0)
    assert not gate.refuses() and not engine.overloaded
    assert _sample(metrics, "bot_webhook_reply_backlog_replies") == 0
    engine.replies_ready = 5_000  # Graph is back and every reply can go now: 5,000 > 10
    assert gate.refuses()
