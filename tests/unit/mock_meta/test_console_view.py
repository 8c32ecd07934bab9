"""The console's pure view rules and its bounded capture of webhook bytes."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mock_meta.clock import ControllableClock
from mock_meta.console.capture import WireCapture
from mock_meta.console.feed import ConsoleFeed
from mock_meta.console.view import (
    conversation,
    failure_timeline,
    mark_retries,
    next_retry_at,
    send_view,
    user_bubble,
)
from mock_meta.journal import (
    ActionRecord,
    AttemptRecord,
    DeliveryRecord,
    Journal,
    SendRecord,
)
from mock_meta.metrics import MockMetrics
from mock_meta.retry_profile import RetryProfile

PSID, PAGE = "1", "2"


def _send(seq: int, text: str, *, status: int = 200, code: int | None = None) -> SendRecord:
    request = {"recipient": {"id": PSID}, "message": {"text": text}}
    return SendRecord(seq, float(seq), PAGE, PSID, "message", request, {}, status, code)


def _delivery(state: str, *attempt_times: float) -> DeliveryRecord:
    record = DeliveryRecord(1, "dlv_1", "app", PAGE, PSID, "m_1", "text", "messages", False, 0.0)
    record.state = state
    record.attempts = [
        AttemptRecord(n, at, 500, 0.01, "http_error", None)
        for n, at in enumerate(attempt_times, start=1)
    ]
    return record


@pytest.mark.parametrize(
    ("event", "bubble"),
    [
        (
            {"message": {"text": "hi", "quick_reply": {"payload": "P"}}},
            {"text": "hi", "payload": "P"},
        ),
        (
            {"message": {"attachments": [{"type": "image"}]}},
            {"attachments": [{"type": "image"}]},
        ),
        (
            {"reaction": {"reaction": "love", "action": "react", "mid": "m_9"}},
            {"reaction": "love", "action": "react", "target_mid": "m_9"},
        ),
        ({"read": {"watermark": 5}}, {"watermark": 5}),
        ({"optin": {}}, {}),
        (None, {}),
    ],
)
def test_user_bubble_says_what_the_user_did(event: Any, bubble: dict[str, Any]) -> None:
    assert user_bubble(event) == bubble


def test_conversation_shows_actions_with_their_events_and_replies_in_order() -> None:
    feed = ConsoleFeed()
    feed.recorded(ActionRecord(1, 1.0, PSID, PAGE, "m_1", "text"))
    feed.enqueued(_delivery("pending"), {"message": {"text": "hi"}})
    feed.recorded(_send(2, "You said: hi"))
    feed.recorded(ActionRecord(3, 3.0, PSID, "other page", "act_2", "read"))

    items = conversation(feed.conversation(PSID), PAGE)

    assert [(i["side"], i.get("text"), (i.get("message") or {}).get("text")) for i in items] == [
        ("user", "hi", None),
        ("bot", None, "You said: hi"),
    ]


def test_feed_keeps_bounded_windows_and_forgets_on_clear() -> None:
    feed = ConsoleFeed(window=2, conversations=2, per_conversation=2)
    for seq, psid in enumerate(["a", "a", "a", "b", "c"], start=1):
        feed.recorded(SendRecord(seq, 0.0, PAGE, psid, "message", {}, {}, 200))

    assert [s.seq for s in feed.sends()] == [4, 5]
    assert feed.conversation("a") == []  # the least recently active user was forgotten
    assert [e.record.seq for e in feed.conversation("c")] == [5]

    feed.cleared()
    assert feed.sends() == [] and feed.conversation("c") == []


def test_a_call_repeating_a_failed_call_is_marked_as_its_retry() -> None:
    sends = [
        send_view(_send(1, "a", status=500, code=2)),
        send_view(_send(2, "b")),
        send_view(_send(3, "a")),
        send_view(_send(4, "a")),
    ]

    marked = mark_retries(sends)

    assert [s["retry_of"] for s in marked] == [None, None, 1, None]


def test_next_retry_is_the_last_attempt_plus_the_profile_delay() -> None:
    profile = RetryProfile(immediate_retries=1, retry_delays=(30.0,))

    assert next_retry_at(_delivery("retrying", 100.0, 100.5), profile) == 130.5
    assert next_retry_at(_delivery("delivered", 100.0), profile) is None


def test_failure_timeline_gives_alert_and_unsubscribe_times() -> None:
    profile = RetryProfile(alert_after=900.0, disable_after=3600.0)

    assert failure_timeline(None, profile) is None
    assert failure_timeline(10.0, profile) == {
        "failing_since": 10.0,
        "alert_at": 910.0,
        "disable_at": 3610.0,
    }


def test_capture_keeps_only_the_newest_deliveries() -> None:
    capture = WireCapture(limit=2)
    for n in (1, 2, 3):
        record = _delivery("pending")
        record.delivery_id = f"dlv_{n}"
        capture.enqueued(record, {"n": n})
    capture.attempted(
        _delivery("delivered", 1.0), AttemptRecord(1, 1.0, 200, 0.0, "success", None), b"{}", {}
    )

    assert capture.queued("dlv_1") is None
    assert capture.queued("dlv_3") is not None
    assert capture.queued("dlv_3")[1] == {"n": 3}  # type: ignore[index]
    # dlv_1 came back as a new slot when its attempt arrived, evicting dlv_2.
    assert [p.body for p in capture.posts("dlv_1")] == [b"{}"]
    assert capture.queued("dlv_2") is None


def test_capture_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit"):
        WireCapture(limit=0)


def test_the_feed_follows_the_journal_and_its_reset() -> None:
    journal = Journal(ControllableClock(), MockMetrics(CollectorRegistry()))
    feed = ConsoleFeed()
    journal.subscribe(feed)

    journal.record_action(PSID, PAGE, "m_1", "text")
    journal.record_send(
        page_id=PAGE, psid=PSID, request={"message": {"text": "hi"}}, response={}, status=200
    )
    journal.record_alert("app", PAGE, "failing_15m", "failing")

    assert [type(e.record).__name__ for e in feed.conversation(PSID)] == [
        "ActionRecord",
        "SendRecord",
    ]
    assert [a.kind for a in feed.alerts()] == ["failing_15m"]
    journal.clear()
    assert feed.conversation(PSID) == [] and feed.alerts() == []
