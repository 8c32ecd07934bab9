"""Parse Meta's webhook envelope into typed events (pure: no I/O, no framework).

>>> events = parse_envelope({"object": "page", "entry": [{"id": "1", "time": 5, "messaging": [
...     {"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 5,
...      "message": {"mid": "m_1", "text": "hi"}}]}]})
>>> events[0].kind, events[0].dedup_key
(<EventKind.TEXT: 'text'>, 'mid:m_1')
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.inbox import StoredEvent

from bot.event_time import Arrival, TimeFix, normalise_timestamp


class PayloadError(ValueError):
    """The body is JSON but not a Messenger envelope we can store; ``reason`` is short."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class EventKind(enum.StrEnum):
    """What a messaging object is about; also the ``event_type`` metric label (a closed set)."""

    TEXT = "text"
    QUICK_REPLY = "quick_reply"
    ATTACHMENTS = "attachments"
    ECHO = "echo"
    POSTBACK = "postback"
    REACTION = "reaction"
    DELIVERY = "delivery"
    READ = "read"
    REFERRAL = "referral"
    OPTIN = "optin"
    HANDOVER = "handover"
    STANDBY = "standby"
    MESSAGE_EDIT = "message_edit"
    POLICY_ENFORCEMENT = "policy_enforcement"
    ACCOUNT_LINKING = "account_linking"
    GAME_PLAY = "game_play"
    FEEDBACK = "feedback"
    UNKNOWN = "unknown"


# Keys whose presence decides the kind, checked in this order (the first match wins).
_KEY_KINDS: tuple[tuple[str, EventKind], ...] = (
    ("postback", EventKind.POSTBACK),
    ("reaction", EventKind.REACTION),
    ("delivery", EventKind.DELIVERY),
    ("read", EventKind.READ),
    ("referral", EventKind.REFERRAL),
    ("optin", EventKind.OPTIN),
    ("pass_thread_control", EventKind.HANDOVER),
    ("take_thread_control", EventKind.HANDOVER),
    ("request_thread_control", EventKind.HANDOVER),
    ("app_roles", EventKind.HANDOVER),
    ("message_edit", EventKind.MESSAGE_EDIT),
    ("policy_enforcement", EventKind.POLICY_ENFORCEMENT),
    ("account_linking", EventKind.ACCOUNT_LINKING),
    ("game_play", EventKind.GAME_PLAY),
    ("response_feedback", EventKind.FEEDBACK),
    ("messaging_feedback", EventKind.FEEDBACK),
)

# Kinds through which a user opens or refreshes the 24-hour messaging window.
WINDOW_OPENING_KINDS = frozenset(
    {
        EventKind.TEXT,
        EventKind.QUICK_REPLY,
        EventKind.ATTACHMENTS,
        EventKind.POSTBACK,
        EventKind.REACTION,
        EventKind.REFERRAL,
        EventKind.OPTIN,
    }
)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One messaging object from ``entry[].messaging[]`` or ``entry[].standby[]``."""

    page_id: str
    kind: EventKind
    sender_id: str | None
    recipient_id: str | None
    timestamp_ms: int
    dedup_key: str
    raw: dict[str, Any] = field(repr=False)
    standby: bool = False
    # What the edge did to ``timestamp`` to get ``timestamp_ms`` (None: taken as sent).
    time_fix: TimeFix | None = None

    @property
    def message(self) -> dict[str, Any]:
        value = self.raw.get("message")
        return value if isinstance(value, dict) else {}

    @property
    def mid(self) -> str | None:
        """The message id this event carries or refers to, if any."""
        for key in ("message", "postback", "reaction", "message_edit"):
            value = self.raw.get(key)
            if isinstance(value, dict) and isinstance(value.get("mid"), str):
                return str(value["mid"])
        return None

    @property
    def text(self) -> str | None:
        value = self.message.get("text")
        return value if isinstance(value, str) else None

    @property
    def payload(self) -> str | None:
        """Postback payload or quick-reply payload."""
        postback = self.raw.get("postback")
        if isinstance(postback, dict) and isinstance(postback.get("payload"), str):
            return str(postback["payload"])
        quick = self.message.get("quick_reply")
        if isinstance(quick, dict) and isinstance(quick.get("payload"), str):
            return str(quick["payload"])
        return None

    @property
    def user_id(self) -> str | None:
        """The PSID of the person in the conversation (echoes invert sender and recipient)."""
        return self.recipient_id if self.kind is EventKind.ECHO else self.sender_id


def parse_envelope(
    body: Any, *, max_events: int | None = None, arrival: Arrival | None = None
) -> list[InboundEvent]:
    """Validate a decoded webhook body and return its events in arrival order.

    Raises ``PayloadError`` (400) for shapes that are not an envelope, (404) when ``object``
    is not ``"page"`` and (413) for more than ``max_events`` events, counted before any is
    parsed. With ``arrival``, timestamps are normalised against it (``bot.event_time``).
    """
    if not isinstance(body, dict):
        raise PayloadError("body must be a JSON object")
    if body.get("object") != "page":
        raise PayloadError("object must be 'page'", status=404)
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("entry must be an array")
    if max_events is not None and _count_events(entries) > max_events:
        raise PayloadError(f"more than {max_events} events in one POST", status=413)
    events: list[InboundEvent] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise PayloadError("entry items must be objects")
        page_id = _as_id(entry.get("id"))
        for channel, standby in (("messaging", False), ("standby", True)):
            items = entry.get(channel, [])
            if not isinstance(items, list):
                raise PayloadError(f"entry.{channel} must be an array")
            for item in items:
                if not isinstance(item, dict):
                    raise PayloadError(f"entry.{channel} items must be objects")
                events.append(parse_event(item, page_id=page_id, standby=standby, arrival=arrival))
    return events


def _count_events(entries: list[Any]) -> int:
    # Cheap on purpose: it runs before any per-event work, so a huge batch costs no more.
    count = 0
    for entry in entries:
        if isinstance(entry, dict):
            for channel in ("messaging", "standby"):
                items = entry.get(channel)
                count += len(items) if isinstance(items, list) else 0
    return count


def parse_event(
    item: dict[str, Any],
    *,
    page_id: str | None,
    standby: bool = False,
    arrival: Arrival | None = None,
) -> InboundEvent:
    """Classify one messaging object and compute its identity for deduplication."""
    sender = _as_id(_nested(item, "sender", "id")) or _as_id(_nested(item, "sender", "user_ref"))
    recipient = _as_id(_nested(item, "recipient", "id"))
    timestamp = item.get("timestamp")
    time_fix = None
    if arrival is None:
        timestamp_ms = _as_millis(timestamp)
    else:
        normalised = normalise_timestamp(timestamp, arrival)
        timestamp_ms, time_fix = normalised.ms, normalised.fix
    kind = _classify(item)
    resolved_page = page_id or (sender if kind is EventKind.ECHO else recipient) or ""
    return InboundEvent(
        page_id=resolved_page,
        kind=EventKind.STANDBY if standby else kind,
        sender_id=sender,
        recipient_id=recipient,
        timestamp_ms=timestamp_ms,
        dedup_key=dedup_key(item, kind, resolved_page, standby=standby),
        raw=item,
        standby=standby,
        time_fix=time_fix,
    )


class StoredPayloadError(ValueError):
    """A stored event whose payload is not a messaging object: retrying cannot help."""


def event_from_storage(stored: StoredEvent) -> InboundEvent:
    """The ``InboundEvent`` of an inbox row, through the same parser as the wire.

    The stored timestamp and dedup key win: the edge normalised them when it stored the event.
    Raises ``StoredPayloadError`` when the payload is not a JSON object.
    """
    try:
        raw = json.loads(stored.payload)
    except ValueError as exc:
        raise StoredPayloadError("payload is not JSON") from exc
    if not isinstance(raw, dict):
        raise StoredPayloadError("payload is not a JSON object")
    standby = stored.kind == EventKind.STANDBY.value
    event = parse_event(raw, page_id=stored.page_id or None, standby=standby)
    return dataclasses.replace(event, timestamp_ms=stored.timestamp_ms, dedup_key=stored.dedup_key)


def dedup_key(item: dict[str, Any], kind: EventKind, page_id: str, *, standby: bool = False) -> str:
    """Identity of an event: the same key means the same event delivered again."""
    prefix = "standby:" if standby else ""
    sender = _as_id(_nested(item, "sender", "id")) or ""
    if kind in (EventKind.TEXT, EventKind.QUICK_REPLY, EventKind.ATTACHMENTS, EventKind.ECHO):
        mid = _nested(item, "message", "mid")
        if isinstance(mid, str) and mid:
            return f"{prefix}mid:{mid}"
    elif kind is EventKind.POSTBACK:
        mid = _nested(item, "postback", "mid")
        if isinstance(mid, str) and mid:
            return f"{prefix}postback:{mid}"
    elif kind is EventKind.REACTION:
        reaction = item.get("reaction")
        if isinstance(reaction, dict) and isinstance(reaction.get("mid"), str):
            action = reaction.get("action", "")
            return f"{prefix}reaction:{sender}:{reaction['mid']}:{action}:{item.get('timestamp')}"
    elif kind in (EventKind.DELIVERY, EventKind.READ):
        watermark = _nested(item, kind.value, "watermark")
        if isinstance(watermark, int | float) and not isinstance(watermark, bool):
            return f"{prefix}{kind.value}:{page_id}:{sender}:{_as_millis(watermark)}"
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    # surrogatepass: a lone surrogate in a hostile page id must not crash the hash (the edge
    # refuses such ids with a 400 once the event is built).
    digest = hashlib.sha256(f"{page_id}|{canonical}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}hash:{digest}"


def _classify(item: dict[str, Any]) -> EventKind:
    message = item.get("message")
    if isinstance(message, dict):
        if message.get("is_echo"):
            return EventKind.ECHO
        if isinstance(message.get("quick_reply"), dict):
            return EventKind.QUICK_REPLY
        if message.get("attachments"):
            return EventKind.ATTACHMENTS
        if isinstance(message.get("text"), str):
            return EventKind.TEXT
        return EventKind.UNKNOWN
    for key, kind in _KEY_KINDS:
        if key in item:
            return kind
    return EventKind.UNKNOWN


def _nested(item: dict[str, Any], key: str, sub: str) -> Any:
    value = item.get(key)
    return value.get(sub) if isinstance(value, dict) else None


def _as_millis(value: Any) -> int:
    # Hostile bodies may carry NaN, infinities or absurd numbers; they count as "no timestamp".
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not 0 <= value < 2**53:
        return 0
    return int(value)


def _as_id(value: Any) -> str | None:
    # Very old payloads carry numeric ids; bool is an int subclass and never an id.
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int):
        return str(value)
    return None
