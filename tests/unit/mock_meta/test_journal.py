"""The journal: reply attribution, extra replies, retention, filters and async waiters."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable

import pytest
from prometheus_client import CollectorRegistry

from mock_meta.clock import ControllableClock
from mock_meta.journal import REDACTED, AttemptRecord, Journal, redact, redact_top_level
from mock_meta.metrics import MockMetrics
from tests.unit.mock_meta.journal_steps import OTHER, PAGE, PSID, act, send


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> ControllableClock:
    return ControllableClock(start=1_767_225_600.0, frozen=True)


@pytest.fixture
def journal(clock: ControllableClock, registry: CollectorRegistry) -> Journal:
    return Journal(clock, MockMetrics(registry))


async def ticks(n: int = 3) -> None:
    """Let callbacks already scheduled run (a loop turn, not a wait for time)."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_reply_answers_the_oldest_unanswered_action_and_records_time_to_reply(
    journal: Journal, clock: ControllableClock, registry: CollectorRegistry
) -> None:
    act(journal, "m_1")
    clock.advance(0.5)
    act(journal, "m_2")
    clock.advance(1.0)
    first = send(journal, message_id="m_r1")
    assert first.answers_mid == "m_1"  # type: ignore[attr-defined]
    assert first.time_to_reply_seconds == pytest.approx(1.5)  # type: ignore[attr-defined]
    second = send(journal, message_id="m_r2")
    assert second.answers_mid == "m_2"  # type: ignore[attr-defined]
    assert journal.action("m_1").answered_by == "m_r1"  # type: ignore[union-attr]
    count = registry.get_sample_value("mock_meta_time_to_first_reply_seconds_count")
    assert count == 2
    assert (
        registry.get_sample_value("mock_meta_time_to_first_reply_seconds_bucket", {"le": "1.0"})
        == 1
    )


def test_a_message_with_nothing_unanswered_counts_as_an_extra_reply(journal: Journal) -> None:
    act(journal, "m_1")
    send(journal)
    duplicate = send(journal)
    assert duplicate.extra  # type: ignore[attr-defined]
    summary = journal.summary()
    assert (summary["answered"], summary["extra_replies"], summary["unanswered"]) == (1, 1, 0)


def test_sender_actions_errors_and_no_reply_actions_are_not_attributed(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, None, "read", expects_reply=False)
    act(journal, "m_1")
    send(journal, kind="sender_action", message_id=None, request={"sender_action": "typing_on"})
    send(journal, status=400, error_code=10, error_subcode=2018278, message_id=None)
    summary = journal.summary()
    assert summary["answered"] == 0 and summary["unanswered"] == 1
    assert summary["sends_by_error_code"] == {"none": 1, "10": 1}
    assert send(journal).answers_mid == "m_1"  # type: ignore[attr-defined]


def test_retention_drops_the_oldest_and_counts_them(clock: ControllableClock) -> None:
    registry = CollectorRegistry()
    journal = Journal(clock, MockMetrics(registry), retention=3)
    for n in range(5):
        act(journal, f"m_{n}")
    assert [a.mid for a in journal.actions()] == ["m_2", "m_3", "m_4"]
    assert journal.action("m_0") is None
    assert journal.summary()["journal_dropped"] == 2 + 2  # actions and their deliveries
    assert registry.get_sample_value("mock_meta_journal_dropped_total") == 4
    assert send(journal).answers_mid == "m_2"  # type: ignore[attr-defined]


def test_filters_by_page_psid_and_mid(journal: Journal) -> None:
    act(journal, "m_1")
    journal.record_action(OTHER, "999", "m_2", "text")
    assert [a.mid for a in journal.actions(psid=OTHER)] == ["m_2"]
    assert [a.mid for a in journal.actions(page_id=PAGE)] == ["m_1"]
    send(journal, message_id="m_r")
    assert [s.message_id for s in journal.sends(mid="m_1")] == ["m_r"]
    assert [s.message_id for s in journal.sends(mid="m_r")] == ["m_r"]
    with pytest.raises(ValueError):
        journal.actions(colour="red")


def test_tokens_never_reach_the_journal(journal: Journal) -> None:
    record = send(
        journal,
        request={
            "access_token": "EAAB-secret",
            "url": "/v25.0/me/messages?access_token=EAAB-secret&x=1",
            "nested": [{"appsecret_proof": "abc"}],
        },
    )
    assert "EAAB-secret" not in repr(record.to_dict())  # type: ignore[attr-defined]
    assert redact({"a": "access_token=s3cret"}) == {"a": "access_token=[redacted]"}


async def test_wait_reply_wakes_when_the_reply_is_recorded_without_polling(
    journal: Journal, clock: ControllableClock
) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    delivery = journal.record_delivery(
        delivery_id="dlv_1",
        app_id="1",
        page_id=PAGE,
        psid=PSID,
        mid="m_1",
        event_type="text",
        field="messages",
    )
    journal.delivery_attempted(
        delivery, AttemptRecord(1, clock.now(), 200, 0.012, "success", "sha256=x")
    )
    journal.delivery_finished(delivery, "delivered")
    waiter = asyncio.create_task(journal.wait_reply(PSID, "m_1", timeout=30))
    await ticks()
    assert not waiter.done()
    clock.advance(0.8)
    send(journal)
    await ticks()
    assert waiter.done()  # a poller with any interval would still be asleep
    result = waiter.result()
    assert result is not None
    assert result.time_to_reply_seconds == pytest.approx(0.8)
    assert result.ack_latency_seconds == pytest.approx(0.012)


async def test_wait_reply_returns_at_once_for_an_earlier_reply_and_none_on_timeout(
    journal: Journal,
) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    send(journal)
    found = await journal.wait_reply(PSID, "m_1", timeout=0.01)
    assert found is not None and found.ack_latency_seconds is None
    journal.record_action(PSID, PAGE, "m_2", "text")
    assert await journal.wait_reply(PSID, "m_2", timeout=0.02) is None


async def test_wait_reply_waits_for_the_ack_when_the_reply_overtakes_it(
    journal: Journal, clock: ControllableClock
) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    delivery = journal.record_delivery(
        delivery_id="dlv_1",
        app_id="1",
        page_id=PAGE,
        psid=PSID,
        mid="m_1",
        event_type="text",
        field="messages",
    )
    send(journal)  # the bot answered before the engine saw its 200
    waiter = asyncio.create_task(journal.wait_reply(PSID, "m_1", timeout=30))
    await ticks()
    assert not waiter.done()
    journal.delivery_attempted(
        delivery, AttemptRecord(1, clock.now(), 200, 0.3, "success", "sha256=x")
    )
    journal.delivery_finished(delivery, "delivered")
    await ticks()
    assert waiter.done() and waiter.result().ack_latency_seconds == 0.3  # type: ignore[union-attr]


async def test_a_reply_recorded_on_another_thread_wakes_the_waiter(journal: Journal) -> None:
    act(journal, "m_1")
    waiter = asyncio.create_task(journal.wait_reply(PSID, "m_1", timeout=30))
    await ticks()
    thread = threading.Thread(target=send, args=(journal,))
    thread.start()
    thread.join()
    result = await asyncio.wait_for(waiter, 5)
    assert result is not None and result.reply.answers_mid == "m_1"


async def test_wait_no_reply_passes_on_silence_and_reports_a_reply(journal: Journal) -> None:
    assert await journal.wait_no_reply(PSID, within=0.02) is None
    waiter = asyncio.create_task(journal.wait_no_reply(PSID, within=30))
    await ticks()
    send(journal, psid=OTHER)
    await ticks()
    assert not waiter.done()  # another user's reply does not count
    send(journal, message_id="m_unwanted")
    reply = await asyncio.wait_for(waiter, 5)
    assert reply is not None and reply.message_id == "m_unwanted"


async def test_wait_delivery_wakes_when_the_delivery_settles(journal: Journal) -> None:
    record = journal.record_delivery(
        delivery_id="dlv_1",
        app_id="1",
        page_id=PAGE,
        psid=PSID,
        mid="m_1",
        event_type="text",
        field="messages",
    )
    waiter = asyncio.create_task(journal.wait_delivery("m_1", timeout=30))
    await ticks()
    journal.delivery_retrying(record)
    await ticks()
    assert not waiter.done()
    journal.delivery_finished(record, "dropped", reason="unsubscribed")
    await ticks()
    assert waiter.done() and waiter.result().state == "dropped"  # type: ignore[union-attr]
    assert await journal.wait_delivery("m_unknown", timeout=0.01) is None


async def test_wait_sends_counts_calls_and_returns_them(journal: Journal) -> None:
    waiter = asyncio.create_task(journal.wait_sends(PSID, 2, timeout=30))
    send(journal, kind="sender_action", message_id=None)
    await ticks()
    assert not waiter.done()
    send(journal)
    sends = await asyncio.wait_for(waiter, 5)
    assert [s.kind for s in sends] == ["sender_action", "message"]
    only_messages = await journal.wait_sends(PSID, 2, timeout=0.01, messages_only=True)
    assert len(only_messages) == 1  # the timeout hit first: fewer than asked


def test_summary_counts_deliveries_by_state_and_retries(
    journal: Journal, clock: ControllableClock
) -> None:
    record = journal.record_delivery(
        delivery_id="dlv_1",
        app_id="1",
        page_id=PAGE,
        psid=PSID,
        mid="m_1",
        event_type="text",
        field="messages",
    )
    for n, (status, outcome) in enumerate([(500, "http_error"), (200, "success")], start=1):
        journal.delivery_attempted(
            record, AttemptRecord(n, clock.now(), status, 0.01, outcome, None)
        )
    journal.delivery_finished(record, "delivered")
    journal.record_delivery(
        delivery_id="dlv_2",
        app_id="1",
        page_id=PAGE,
        psid=PSID,
        mid="m_2",
        event_type="text",
        field="messages",
    )
    summary = journal.summary()
    assert summary["deliveries"] == {"delivered": 1, "pending": 1}
    assert summary["retries"] == 1


def test_clear_forgets_everything(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    send(journal)
    journal.record_alert("1", PAGE, "failing_15m", "failing")
    journal.record_subscription("1", PAGE, "disabled", reason="failing")
    journal.clear()
    assert journal.summary()["actions"] == 0
    assert not (journal.actions() or journal.sends() or journal.alerts() or journal.subscriptions())


def test_send_requests_are_stored_without_a_copy_unless_a_secret_is_replaced() -> None:
    plain = {"recipient": {"id": PSID}, "message": {"text": "a=b"}}
    assert redact_top_level(plain) is plain
    with_token = {"recipient": {"id": PSID}, "access_token": "EAAB-secret", "q": "x&access_token=t"}
    stored = redact_top_level(with_token)
    assert stored == {
        "recipient": {"id": PSID},
        "access_token": REDACTED,
        "q": f"x&access_token={REDACTED}",
    }
    assert with_token["access_token"] == "EAAB-secret"  # the caller's dict is left alone


# ---- memory and concurrency bounds (issue 9) --------------------------------------------------


def _traffic(journal: Journal, users: range) -> None:
    """One acknowledged, answered text per user, each user new."""
    for n in users:
        psid = f"9{n:015d}"
        act(journal, f"m_{n}", psid=psid)
        send(journal, psid=psid, message_id=f"m_r{n}")


def test_memory_stays_bounded_by_retention_whatever_the_number_of_users(
    clock: ControllableClock,
) -> None:
    journal = Journal(clock, MockMetrics(CollectorRegistry()), retention=100)
    _traffic(journal, range(2_000))
    gc.collect()
    baseline = len(gc.get_objects())
    _traffic(journal, range(2_000, 22_000))  # 20,000 more distinct users
    gc.collect()
    grown = len(gc.get_objects()) - baseline
    assert journal.tracked_psids <= 100  # each index left with its user's last record
    assert len(journal.actions()) == len(journal.sends()) == 100
    assert grown < 1_000, f"{grown} more live objects after 20,000 new users"
    assert journal.summary()["answered"] == 22_000  # totals since the reset are kept


async def test_a_waiter_for_an_unknown_user_leaves_no_index_behind(journal: Journal) -> None:
    assert await journal.wait_no_reply("1" * 16, within=0.01) is None
    assert await journal.wait_sends("2" * 16, 1, timeout=0.01) == []
    assert await journal.wait_reply("3" * 16, "m_x", timeout=0.01) is None
    assert journal.tracked_psids == 0


async def test_ten_thousand_concurrent_waiters_return_within_their_timeout_plus_a_margin(
    journal: Journal,
) -> None:
    timeout, margin = 1.0, 1.0  # the margin absorbs a loaded CI machine; the old journal took 5 s

    async def overshoot(wait: Awaitable[object]) -> float:
        started = time.perf_counter()
        await wait
        return time.perf_counter() - started - timeout

    silent = [overshoot(journal.wait_no_reply(PSID, within=timeout)) for _ in range(5_000)]
    answered = [overshoot(journal.wait_reply(OTHER, "m_1", timeout=timeout)) for _ in range(5_000)]
    act(journal, "m_1", psid=OTHER)
    waiting = asyncio.gather(*silent, *answered)
    await ticks()
    send(journal, psid=OTHER)  # wakes the 5,000 reply waiters at once
    overshoots = await waiting
    assert max(overshoots) < margin
    assert journal.tracked_psids == 1  # OTHER keeps its records; PSID's waiters are gone


def test_concurrent_writers_and_readers_see_consistent_counts(journal: Journal) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(offset: int) -> None:
        try:
            _traffic(journal, range(offset, offset + 2_000))
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                summary = journal.summary()
                assert summary["owed"] == summary["answered"] + summary["unanswered"]
                journal.actions(psid=PSID)
                journal.sends(mid="m_1")
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(n * 10_000,)) for n in range(3)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert journal.summary()["answered"] == 6_000
