"""The delivery engine against a real loopback receiver that re-verifies every signature."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from mock_meta.builders import BuiltEvent, EventBuilder, envelope
from mock_meta.chaos import Chaos, ChaosConfig
from mock_meta.clock import ControllableClock
from mock_meta.delivery import AppTarget, DeliveryEngine
from mock_meta.journal import DeliveryRecord, Journal
from mock_meta.metrics import MockMetrics
from mock_meta.retry_profile import RetryProfile
from mock_meta.wire import serialize

APP_ID, SECRET = "1234567890123456", "test_app_secret"
PAGE, PAGE_2 = "104501234567890", "104509999999999"
PSID, PSID_2 = "6543210987654321", "6543210987650002"


@pytest.fixture
def build(clock: ControllableClock) -> EventBuilder:
    return EventBuilder(clock, random.Random(3))


def enqueue(engine: DeliveryEngine, url: str, built: BuiltEvent, **kw: Any) -> str:
    return engine.enqueue(
        AppTarget(APP_ID, SECRET, url),
        built.page_id,
        built.event,
        field=built.field,
        psid=built.psid,
        mid=built.mid,
        standby=built.standby,
        event_type=built.event_type.value,
        **kw,
    )


async def settled(journal: Journal, built: BuiltEvent) -> DeliveryRecord:
    """The delivery of ``built`` once it settled (fails the test after 5 s)."""
    assert built.mid is not None
    record = await journal.wait_delivery(built.mid, timeout=5)
    assert record is not None, f"delivery of {built.mid} did not settle"
    return record


def attempts(metrics: MockMetrics, outcome: str, attempt: str) -> float:
    value = metrics.registry.get_sample_value(
        "mock_meta_delivery_attempts_total", {"outcome": outcome, "attempt": attempt}
    )
    return value or 0.0


async def test_delivers_metas_exact_bytes_with_signatures_the_receiver_can_verify(
    make_engine: Any,
    receiver: Any,
    journal: Journal,
    metrics: MockMetrics,
    clock: ControllableClock,
    build: EventBuilder,
) -> None:
    engine = await make_engine()
    built = build.text(PAGE, PSID, "äöå ❤️ see https://x.io/a")
    enqueue(engine, receiver.url, built)
    [got] = await receiver.wait_for(1)
    assert got.sha256_valid and got.sha1_valid
    assert got.headers["user-agent"] == "facebookexternalua"
    assert got.headers["content-type"] == "application/json"
    assert (
        b"\\u00e4\\u00f6\\u00e5 \\u2764\\ufe0f" in got.body and b"https:\\/\\/x.io\\/a" in got.body
    )
    assert got.body.isascii()
    assert got.body == serialize(envelope([built.entry(time_ms=int(clock.now() * 1000))]))
    assert got.json["entry"][0]["messaging"] == [built.event]
    record = await settled(journal, built)
    assert record.state == "delivered"
    assert record.attempts[0].signature == got.headers["x-hub-signature-256"]
    assert record.ack_latency_seconds is not None and record.ack_latency_seconds > 0
    assert attempts(metrics, "success", "1") == 1
    assert engine.backlog == 0


async def test_sha1_header_is_left_out_when_switched_off(
    make_engine: Any, receiver: Any, build: EventBuilder
) -> None:
    engine = await make_engine(include_sha1=False)
    enqueue(engine, receiver.url, build.text(PAGE, PSID, "hi"))
    [got] = await receiver.wait_for(1)
    assert got.sha256_valid and "x-hub-signature" not in got.headers


async def test_each_psid_keeps_its_order_with_one_post_in_flight(
    make_engine: Any, receiver: Any, build: EventBuilder
) -> None:
    engine = await make_engine()
    receiver.latency = 0.002
    sent: dict[str, list[str | None]] = {PSID: [], PSID_2: []}
    for n in range(10):
        for psid in (PSID, PSID_2):
            built = build.text(PAGE, psid, f"{n}")
            sent[psid].append(built.mid)
            enqueue(engine, receiver.url, built)
    got = await receiver.wait_for(20)
    for psid in (PSID, PSID_2):
        order = [r.mids[0] for r in got if r.events[0]["sender"]["id"] == psid]
        assert order == sent[psid]
    assert receiver.max_concurrent_per_psid == 1


async def test_many_psids_are_in_flight_at_once(
    make_engine: Any, receiver: Any, build: EventBuilder
) -> None:
    engine = await make_engine()
    # Every POST hangs until released: only concurrent delivery lets all 20 arrive.
    receiver.respond(*["hang"] * 20)
    for n in range(20):
        enqueue(engine, receiver.url, build.text(PAGE, f"70000000000{n:05d}", "hi"))
    await receiver.wait_for(20)


async def test_a_500_is_retried_immediately_then_delivered(
    make_engine: Any, receiver: Any, journal: Journal, metrics: MockMetrics, build: EventBuilder
) -> None:
    engine = await make_engine()
    receiver.respond(500)
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    first, second = await receiver.wait_for(2)
    assert first.body == second.body and second.sha256_valid
    record = await settled(journal, built)
    assert record.state == "delivered"
    assert [(a.attempt, a.status, a.outcome) for a in record.attempts] == [
        (1, 500, "http_error"),
        (2, 200, "success"),
    ]
    assert attempts(metrics, "http_error", "1") == 1 and attempts(metrics, "success", "2") == 1
    assert journal.summary()["retries"] == 1


@pytest.mark.parametrize(("success", "retried"), [("exact_200", True), ("any_2xx", False)])
async def test_other_2xx_counts_only_under_the_any_2xx_rule(
    make_engine: Any,
    receiver: Any,
    journal: Journal,
    build: EventBuilder,
    success: str,
    retried: bool,
) -> None:
    engine = await make_engine(profile=RetryProfile(success=success))  # type: ignore[arg-type]
    receiver.respond(204)
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    record = await settled(journal, built)
    assert record.state == "delivered"
    assert len(record.attempts) == (2 if retried else 1)


async def test_a_redirect_is_a_failure(
    make_engine: Any, receiver: Any, journal: Journal, build: EventBuilder
) -> None:
    engine = await make_engine(profile=RetryProfile(success="any_2xx"))
    receiver.respond(302)
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    record = await settled(journal, built)
    assert [a.status for a in record.attempts] == [302, 200]


async def test_a_slow_receiver_is_counted_as_a_timeout_and_retried(
    make_engine: Any, receiver: Any, journal: Journal, metrics: MockMetrics, build: EventBuilder
) -> None:
    engine = await make_engine(profile=RetryProfile(timeout_seconds=0.2))
    receiver.respond("hang")
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    record = await settled(journal, built)
    assert record.state == "delivered"
    assert [a.outcome for a in record.attempts] == ["timeout", "success"]
    assert record.attempts[0].latency_seconds >= 0.2
    assert attempts(metrics, "timeout", "1") == 1
    timeouts = metrics.registry.get_sample_value(
        "mock_meta_delivery_duration_seconds_count", {"outcome": "timeout"}
    )
    assert timeouts == 1


async def test_a_failing_event_waits_on_the_clock_without_blocking_later_events(
    make_engine: Any,
    receiver: Any,
    journal: Journal,
    metrics: MockMetrics,
    clock: ControllableClock,
    build: EventBuilder,
    eventually: Any,
) -> None:
    profile = RetryProfile(immediate_retries=0, retry_delays=(30.0,))
    engine = await make_engine(profile=profile)
    receiver.respond(500)
    first, second = build.text(PAGE, PSID, "1"), build.text(PAGE, PSID, "2")
    enqueue(engine, receiver.url, first)
    enqueue(engine, receiver.url, second)
    await receiver.wait_for(2)
    await eventually(lambda: engine.quiet)
    assert engine.retrying == 1
    assert metrics.registry.get_sample_value("mock_meta_delivery_retry_backlog") == 1
    assert journal.deliveries(mid=first.mid)[0].state == "retrying"
    clock.advance(29)
    await eventually(lambda: engine.quiet)
    assert len(receiver.received) == 2  # not due yet
    clock.advance(1)
    got = await receiver.wait_for(3)
    # Meta's documented reordering after failures: 1 (failed), 2, then 1 again.
    assert [r.mids[0] for r in got] == [first.mid, second.mid, first.mid]
    assert (await settled(journal, first)).state == "delivered"
    assert engine.backlog == 0


async def test_receiver_down_alerts_at_15_minutes_and_disables_the_page_at_an_hour(
    make_engine: Any,
    closed_url: str,
    receiver: Any,
    journal: Journal,
    metrics: MockMetrics,
    clock: ControllableClock,
    subscriptions: Any,
    build: EventBuilder,
    eventually: Any,
) -> None:
    engine = await make_engine()
    start = clock.now()
    events = [build.text(PAGE, psid, "hi") for psid in (PSID, PSID_2)]
    for built in events:
        enqueue(engine, closed_url, built)
    other_page = build.text(PAGE_2, PSID, "elsewhere")
    enqueue(engine, receiver.url, other_page)  # a healthy page of the same app is unaffected
    await eventually(lambda: engine.quiet)
    assert engine.failing_since(APP_ID, PAGE) == start
    assert (await settled(journal, other_page)).state == "delivered"

    def alerts(kind: str) -> float:
        return (
            metrics.registry.get_sample_value("mock_meta_developer_alerts_total", {"kind": kind})
            or 0.0
        )

    while clock.now() < start + 3600:
        clock.advance(30)
        await eventually(lambda: engine.quiet)
        elapsed = clock.now() - start
        assert alerts("failing_15m") == (1 if elapsed >= 900 else 0), elapsed
        assert bool(subscriptions.disabled) == (elapsed >= 3600), elapsed
    await eventually(lambda: engine.backlog == 0)

    failing, disabled = journal.alerts(page_id=PAGE)
    assert (failing.kind, failing.at) == ("failing_15m", start + 900)
    assert (disabled.kind, disabled.at) == ("webhooks_disabled", start + 3600)
    assert "test_app_secret" not in failing.message + disabled.message
    assert alerts("webhooks_disabled") == 1
    [change] = journal.subscriptions()
    assert (change.app_id, change.page_id, change.change) == (APP_ID, PAGE, "disabled")
    assert list(subscriptions.disabled) == [(APP_ID, PAGE)]
    for built in events:
        record = journal.deliveries(mid=built.mid)[0]
        assert (record.state, record.reason) == ("dropped", "unsubscribed")
        # 4 at once, then spaced by 1, 5, 30, 120, 300, 600 s, then every 600 s: with the clock
        # moving in 30 s steps they land at 30, 60, 90, 210, 510, 1110, 1710, 2310, 2910, 3510.
        assert [round(a.at - start) for a in record.attempts] == [0] * 4 + [
            30,
            60,
            90,
            210,
            510,
            1110,
            1710,
            2310,
            2910,
            3510,
        ]
    dropped = metrics.registry.get_sample_value(
        "mock_meta_deliveries_dropped_total", {"reason": "unsubscribed"}
    )
    assert dropped == 2

    # Nothing is delivered any more, even to a working URL, until re-subscribed.
    later = build.text(PAGE, PSID, "after")
    enqueue(engine, receiver.url, later)
    assert journal.deliveries(mid=later.mid)[0].state == "skipped"
    assert [r.mids for r in receiver.received] == [[other_page.mid]]
    subscriptions.resubscribe(APP_ID, PAGE)
    enqueue(engine, receiver.url, later)
    await receiver.wait_for(2)


async def test_any_success_resets_the_failing_timer(
    make_engine: Any,
    receiver: Any,
    journal: Journal,
    clock: ControllableClock,
    subscriptions: Any,
    build: EventBuilder,
    eventually: Any,
) -> None:
    engine = await make_engine(profile=RetryProfile(retry_delays=(), repeat_delay=60.0))
    receiver.default_status = 500
    start = clock.now()
    enqueue(engine, receiver.url, build.text(PAGE, PSID, "hi"))
    await eventually(lambda: engine.quiet)
    clock.advance(600)
    await eventually(lambda: engine.quiet)
    receiver.default_status = 200
    clock.advance(60)
    await eventually(lambda: engine.backlog == 0 and engine.quiet)
    assert engine.failing_since(APP_ID, PAGE) is None
    receiver.default_status = 500
    enqueue(engine, receiver.url, build.text(PAGE, PSID, "again"))
    await eventually(lambda: engine.quiet)
    assert engine.failing_since(APP_ID, PAGE) == start + 660
    clock.advance(900 - 660 + 60)  # an hour after the first failure, 5 min into the new streak
    await eventually(lambda: engine.quiet)
    assert journal.alerts() == [] and not subscriptions.disabled


async def test_an_event_is_given_up_after_give_up_after(
    make_engine: Any,
    receiver: Any,
    journal: Journal,
    metrics: MockMetrics,
    clock: ControllableClock,
    build: EventBuilder,
    eventually: Any,
) -> None:
    profile = RetryProfile(
        immediate_retries=0,
        retry_delays=(),
        repeat_delay=10,
        give_up_after=25,
        alert_after=1000,
        disable_after=2000,
    )
    engine = await make_engine(profile=profile)
    receiver.respond(500, 500, 500)
    poison = build.text(PAGE, PSID, "poison")
    enqueue(engine, receiver.url, poison)
    for _ in range(3):
        await eventually(lambda: engine.quiet)
        clock.advance(10)
    record = await settled(journal, poison)
    assert (record.state, record.reason) == ("dropped", "expired")
    # Attempts at 0, 10 and 20 s; the next (30 s) would be past give_up_after (25 s).
    assert [a.at - record.attempts[0].at for a in record.attempts] == [0, 10, 20]
    expired = metrics.registry.get_sample_value(
        "mock_meta_deliveries_dropped_total", {"reason": "expired"}
    )
    assert expired == 1


async def test_unsubscribed_fields_are_skipped_and_never_sent(
    make_engine: Any, receiver: Any, journal: Journal, subscriptions: Any, build: EventBuilder
) -> None:
    subscriptions.unsubscribed_fields.add("message_reads")
    engine = await make_engine()
    read = build.read(PAGE, PSID, 1)
    text = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, read)
    enqueue(engine, receiver.url, text)
    [got] = await receiver.wait_for(1)
    assert got.mids == [text.mid]
    [skipped] = [d for d in journal.deliveries() if d.event_type == "read"]
    assert skipped.state == "skipped" and "message_reads" in (skipped.reason or "")


async def test_duplicates_carry_identical_bytes_and_signature(
    make_engine: Any, receiver: Any, journal: Journal, build: EventBuilder, eventually: Any
) -> None:
    engine = await make_engine(chaos=ChaosConfig(seed=1, duplicate_probability=1.0))
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    assert first.headers["x-hub-signature-256"] == second.headers["x-hub-signature-256"]
    assert first.sha256_valid
    record = journal.deliveries(mid=built.mid)[0]
    await eventually(lambda: len(record.attempts) == 2)
    assert [a.duplicate for a in record.attempts] == [False, True]


async def test_reordering_swaps_an_event_with_the_next_of_the_same_psid(
    make_engine: Any, receiver: Any, build: EventBuilder
) -> None:
    engine = await make_engine(chaos=ChaosConfig(seed=1, reorder_probability=1.0))
    first, second = build.text(PAGE, PSID, "1"), build.text(PAGE, PSID, "2")
    enqueue(engine, receiver.url, first)
    enqueue(engine, receiver.url, second)
    got = await receiver.wait_for(2)
    assert [r.mids[0] for r in got] == [second.mid, first.mid]


async def test_batching_puts_entries_of_several_pages_in_one_signed_post(
    make_engine: Any, receiver: Any, journal: Journal, build: EventBuilder
) -> None:
    # Pick a seed whose first decision batches the most; fixed by the seed, so reproducible.
    seed = next(
        s
        for s in range(100)
        if Chaos(ChaosConfig(seed=s, batch_max_entries=4)).batch_size("dlv_1") == 4
    )
    engine = await make_engine(chaos=ChaosConfig(seed=seed, batch_max_entries=4))
    built = [
        build.text(page, f"70000000000000{n}", "hi") for n, page in enumerate([PAGE, PAGE_2] * 3)
    ]
    for b in built:
        enqueue(engine, receiver.url, b)
    deliveries = [await settled(journal, b) for b in built]
    assert all(d.state == "delivered" for d in deliveries)
    first = receiver.received[0]
    assert first.sha256_valid
    assert len(first.json["entry"]) == 4
    assert {e["id"] for e in first.json["entry"]} == {PAGE, PAGE_2}
    assert all(len(e["messaging"]) == 1 for e in first.json["entry"])
    assert sorted(str(m) for r in receiver.received for m in r.mids) == sorted(
        str(b.mid) for b in built
    )


@pytest.mark.parametrize("mode", ["wrong", "missing"])
async def test_bad_signature_modes_reach_the_receiver(
    make_engine: Any, receiver: Any, build: EventBuilder, mode: str
) -> None:
    engine = await make_engine(chaos=ChaosConfig(seed=1, signature=mode))  # type: ignore[arg-type]
    enqueue(engine, receiver.url, build.text(PAGE, PSID, "hi"))
    [got] = await receiver.wait_for(1)
    assert not got.sha256_valid and not got.sha1_valid
    assert ("x-hub-signature-256" in got.headers) == (mode == "wrong")


async def test_signature_mode_can_be_set_for_one_delivery(
    make_engine: Any, receiver: Any, build: EventBuilder
) -> None:
    engine = await make_engine()
    enqueue(engine, receiver.url, build.text(PAGE, PSID, "forged"), signature_mode="wrong")
    enqueue(engine, receiver.url, build.text(PAGE, PSID, "genuine"))
    forged, genuine = await receiver.wait_for(2)
    assert not forged.sha256_valid and genuine.sha256_valid


async def test_events_cut_off_by_stop_are_delivered_after_a_restart(
    make_engine: Any, receiver: Any, journal: Journal, build: EventBuilder
) -> None:
    engine = await make_engine()
    receiver.respond("hang")
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    await receiver.wait_for(1)
    await engine.stop()
    assert engine.backlog == 1 and journal.deliveries(mid=built.mid)[0].state == "pending"
    await engine.start()
    _, again = await receiver.wait_for(2)
    assert again.mids == [built.mid]
    assert (await settled(journal, built)).state == "delivered"


async def test_an_injected_client_carries_every_post(
    make_engine: Any, journal: Journal, build: EventBuilder
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="EVENT_RECEIVED")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        engine = await make_engine(client=client)
        built = build.text(PAGE, PSID, "hi")
        enqueue(engine, "http://bot.invalid/webhook", built)
        assert (await settled(journal, built)).state == "delivered"
    assert [str(r.url) for r in seen] == ["http://bot.invalid/webhook"]


@pytest.mark.parametrize(("max_in_flight", "order"), [(1, ["A", "A", "B"]), (2, ["A", "B", "A"])])
async def test_max_in_flight_caps_the_posts_open_at_once(
    make_engine: Any,
    receiver: Any,
    journal: Journal,
    build: EventBuilder,
    max_in_flight: int,
    order: list[str],
) -> None:
    # A's first POST hangs until its timeout; B can overtake it only if a second slot exists.
    engine = await make_engine(
        profile=RetryProfile(timeout_seconds=0.2), max_in_flight=max_in_flight
    )
    receiver.respond("hang")
    a, b = build.text(PAGE, PSID, "A"), build.text(PAGE, PSID_2, "B")
    enqueue(engine, receiver.url, a)
    enqueue(engine, receiver.url, b)
    got = await receiver.wait_for(3)
    names = {a.mid: "A", b.mid: "B"}
    assert [names[r.mids[0]] for r in got] == order
    assert (await settled(journal, a)).state == (await settled(journal, b)).state == "delivered"


def test_max_in_flight_must_be_positive(
    clock: ControllableClock, journal: Journal, metrics: MockMetrics, subscriptions: Any
) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        DeliveryEngine(
            clock=clock,
            journal=journal,
            metrics=metrics,
            profile=RetryProfile(),
            chaos=Chaos(),
            subscriptions=subscriptions,
            max_in_flight=0,
        )


async def test_the_seconds_switch_sends_timestamps_in_seconds_as_meta_sometimes_does(
    make_engine: Any, receiver: Any, build: EventBuilder, journal: Journal
) -> None:
    engine = await make_engine()
    engine.timestamp_unit = "seconds"
    built = build.text(PAGE, PSID, "hi")
    enqueue(engine, receiver.url, built)
    assert (await settled(journal, built)).state == "delivered"
    entry = receiver.received[0].json["entry"][0]
    assert entry["messaging"][0]["timestamp"] == built.timestamp_ms // 1000
    assert entry["time"] < 10**11  # seconds, not milliseconds
    assert receiver.received[0].sha256_valid
    assert built.event["timestamp"] == built.timestamp_ms  # the journal's event is unchanged
