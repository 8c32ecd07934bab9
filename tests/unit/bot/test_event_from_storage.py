"""A stored event decodes through the wire parser: one parser, the same typed event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.events import EventKind, StoredPayloadError, event_from_storage, parse_event
from bot.inbox import StoredEvent

PAGE = "104501234567890"


def stored(item: Any, *, kind: str = "text", timestamp_ms: int = 5, key: str = "k") -> StoredEvent:
    payload = item if isinstance(item, str) else json.dumps(item)
    return StoredEvent(1, PAGE, "u", kind, timestamp_ms, key, payload, None, 0.0)


@pytest.mark.parametrize(
    "item",
    [
        {"sender": {"id": "u"}, "recipient": {"id": PAGE}, "message": {"mid": "m", "text": "hi"}},
        {"sender": {"user_ref": "ref_1"}, "recipient": {"id": PAGE}, "optin": {"type": "x"}},
        {
            "sender": {"id": PAGE},
            "recipient": {"id": "u"},
            "message": {"mid": "m_e", "is_echo": True, "metadata": "mhb1:3"},
        },
    ],
)
def test_a_stored_event_is_the_event_the_wire_parser_builds(item: dict[str, Any]) -> None:
    wire = parse_event(item, page_id=PAGE)
    event = event_from_storage(stored(item, kind=wire.kind.value, key=wire.dedup_key))
    assert (event.kind, event.sender_id, event.recipient_id, event.user_id, event.raw) == (
        wire.kind,
        wire.sender_id,
        wire.recipient_id,
        wire.user_id,
        wire.raw,
    )


def test_the_stored_timestamp_and_key_win_over_the_payload() -> None:
    item = {"sender": {"id": "u"}, "timestamp": 1_700_000_000, "message": {"text": "hi"}}
    event = event_from_storage(stored(item, timestamp_ms=1_700_000_000_000, key="mid:x"))
    assert (event.timestamp_ms, event.dedup_key) == (1_700_000_000_000, "mid:x")


def test_a_standby_row_stays_standby() -> None:
    item = {"sender": {"id": "u"}, "message": {"mid": "m", "text": "hi"}}
    event = event_from_storage(stored(item, kind="standby"))
    assert event.kind is EventKind.STANDBY and event.standby


@pytest.mark.parametrize("payload", ["not json", "[1, 2]"])
def test_a_payload_that_is_not_a_messaging_object_cannot_be_retried(payload: str) -> None:
    with pytest.raises(StoredPayloadError):
        event_from_storage(stored(payload))
