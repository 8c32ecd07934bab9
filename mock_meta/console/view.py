"""Pure view-model builders: journal records (plus captured events and bytes) → console JSON.

No I/O and no framework: the routes gather records and these functions shape them, so the
rules (what a user bubble says, when a retry is due, which send retries which) test in ms.

>>> user_bubble({"message": {"mid": "m_1", "text": "hi"}})
{'text': 'hi'}
>>> user_bubble({"postback": {"title": "Buy", "payload": "BUY"}})
{'text': 'Buy', 'payload': 'BUY'}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mock_meta.console.capture import WirePost
from mock_meta.console.feed import Entry
from mock_meta.journal import DeliveryRecord, SendRecord
from mock_meta.retry_profile import RetryProfile


def user_bubble(event: dict[str, Any] | None) -> dict[str, Any]:
    """What the user did in one ``messaging[]`` event, as the chat shows it."""
    if not event:
        return {}
    message = event.get("message")
    if isinstance(message, dict):
        bubble: dict[str, Any] = {}
        if message.get("text") is not None:
            bubble["text"] = message["text"]
        quick = message.get("quick_reply")
        if isinstance(quick, dict):
            bubble["payload"] = quick.get("payload")
        if message.get("attachments"):
            bubble["attachments"] = message["attachments"]
        return bubble
    postback = event.get("postback")
    if isinstance(postback, dict):
        return {"text": postback.get("title"), "payload": postback.get("payload")}
    reaction = event.get("reaction")
    if isinstance(reaction, dict):
        return {
            "reaction": reaction.get("reaction"),
            "action": reaction.get("action"),
            "target_mid": reaction.get("mid"),
        }
    read = event.get("read")
    if isinstance(read, dict):
        return {"watermark": read.get("watermark")}
    return {}


def conversation(entries: Iterable[Entry], page_id: str | None = None) -> list[dict[str, Any]]:
    """One thread, oldest first: the user's actions and every Send API call to them."""
    items: list[dict[str, Any]] = []
    for entry in entries:
        record = entry.record
        if page_id is not None and record.page_id != page_id:
            continue
        if isinstance(record, SendRecord):
            items.append({"side": "bot", **send_view(record)})
            continue
        items.append(
            {
                "side": "user",
                "seq": record.seq,
                "at": record.at,
                "type": record.event_type,
                "mid": record.mid,
                "answered_by": record.answered_by,
                **user_bubble(entry.event),
            }
        )
    return items


def send_view(send: SendRecord) -> dict[str, Any]:
    """A Send API call: request, answer (or Graph error) and the action it answered."""
    request = send.request
    return {
        "seq": send.seq,
        "at": send.at,
        "page_id": send.page_id,
        "psid": send.psid,
        "kind": send.kind,
        "message": request.get("message") if isinstance(request.get("message"), dict) else None,
        "sender_action": request.get("sender_action"),
        "request": request,
        "response": send.response,
        "status": send.status,
        "ok": send.ok,
        "error_code": send.error_code,
        "error_subcode": send.error_subcode,
        "message_id": send.message_id,
        "answers_mid": send.answers_mid,
        "extra": send.extra,
    }


def mark_retries(sends: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``retry_of`` on a call that repeats the request of a failed call just before it
    to the same user (how a bot's Send API retry shows up on the platform)."""
    failed: dict[tuple[Any, ...], int] = {}
    for send in sends:
        key = (send["psid"], repr(send["message"]), send["sender_action"])
        send["retry_of"] = failed.pop(key, None)
        if not send["ok"]:
            failed[key] = send["seq"]
    return sends


def delivery_view(
    record: DeliveryRecord, posts: list[WirePost], profile: RetryProfile
) -> dict[str, Any]:
    """A delivery with each attempt's exact bytes and headers, and its next retry time."""
    by_attempt = {post.attempt: post for post in posts}
    attempts = []
    for attempt in list(record.attempts):
        post = by_attempt.get(attempt.attempt)
        attempts.append(
            {
                "attempt": attempt.attempt,
                "at": attempt.at,
                "status": attempt.status,
                "latency_ms": round(attempt.latency_seconds * 1000, 1),
                "outcome": attempt.outcome,
                "error": attempt.error,
                "duplicate": attempt.duplicate,
                "batch_size": attempt.batch_size,
                "body": post.body.decode("utf-8", "replace") if post else None,
                "headers": post.headers if post else None,
            }
        )
    return {
        "delivery_id": record.delivery_id,
        "app_id": record.app_id,
        "page_id": record.page_id,
        "psid": record.psid,
        "mid": record.mid,
        "event_type": record.event_type,
        "field": record.field,
        "state": record.state,
        "reason": record.reason,
        "enqueued_at": record.enqueued_at,
        "delivered_at": record.delivered_at,
        "attempts": attempts,
        "next_retry_at": next_retry_at(record, profile),
    }


def next_retry_at(record: DeliveryRecord, profile: RetryProfile) -> float | None:
    """Platform time of a retrying delivery's next attempt (its last attempt + the delay)."""
    tries = [a for a in record.attempts if not a.duplicate]
    if record.state != "retrying" or not tries:
        return None
    return tries[-1].at + profile.delay_after(len(tries))


def failure_timeline(since: float | None, profile: RetryProfile) -> dict[str, Any] | None:
    """When a failing page raises the developer alert and when it gets unsubscribed."""
    if since is None:
        return None
    return {
        "failing_since": since,
        "alert_at": since + profile.alert_after,
        "disable_at": since + profile.disable_after,
    }
