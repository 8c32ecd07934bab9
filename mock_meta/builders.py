"""Messaging events exactly as Meta shapes them (reference §3), one builder per event type.

Ids look real (mids are ``m_`` + URL-safe random, reproducible with a seeded ``random.Random``)
and timestamps are epoch milliseconds from the platform clock.

>>> import random
>>> from mock_meta.clock import ControllableClock
>>> build = EventBuilder(ControllableClock(start=1_700_000_000.0, frozen=True), random.Random(1))
>>> ev = build.text("104501234567890", "6543210987654321", "hello")
>>> ev.field, ev.event["timestamp"], ev.mid.startswith("m_")
('messages', 1700000000000, True)
>>> envelope([ev.entry(time_ms=1700000000001)])["entry"][0]["messaging"][0] is ev.event
True
"""

from __future__ import annotations

import base64
import enum
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mock_meta.clock import Clock

PAGE_INBOX_APP_ID = 263902037430900
LIKE_STICKER_ID = 369239263222822


class EventType(enum.StrEnum):
    """What a user (or the platform) did; also the ``event_type`` metric label (closed set)."""

    TEXT = "text"
    QUICK_REPLY = "quick_reply"
    ATTACHMENT = "attachment"
    REFERRAL_MESSAGE = "referral_message"
    ECHO = "echo"
    DELIVERY = "delivery"
    READ = "read"
    REACTION = "reaction"
    MESSAGE_EDIT = "message_edit"
    POSTBACK = "postback"
    REFERRAL = "referral"
    OPTIN = "optin"
    PASS_THREAD_CONTROL = "pass_thread_control"
    TAKE_THREAD_CONTROL = "take_thread_control"
    REQUEST_THREAD_CONTROL = "request_thread_control"
    APP_ROLES = "app_roles"
    POLICY_ENFORCEMENT = "policy_enforcement"
    ACCOUNT_LINKING = "account_linking"
    GAME_PLAY = "game_play"
    RESPONSE_FEEDBACK = "response_feedback"
    MESSAGING_FEEDBACK = "messaging_feedback"


# The subscription field an app must hold (app AND page level) to receive each type (§3 table).
# A referral *message* needs `messages` (and `messaging_referrals` for the referral part).
EVENT_FIELDS: dict[EventType, str] = {
    EventType.TEXT: "messages",
    EventType.QUICK_REPLY: "messages",
    EventType.ATTACHMENT: "messages",
    EventType.REFERRAL_MESSAGE: "messages",
    EventType.ECHO: "message_echoes",
    EventType.DELIVERY: "message_deliveries",
    EventType.READ: "message_reads",
    EventType.REACTION: "message_reactions",
    EventType.MESSAGE_EDIT: "message_edits",
    EventType.POSTBACK: "messaging_postbacks",
    EventType.REFERRAL: "messaging_referrals",
    EventType.OPTIN: "messaging_optins",
    EventType.PASS_THREAD_CONTROL: "messaging_handovers",
    EventType.TAKE_THREAD_CONTROL: "messaging_handovers",
    EventType.REQUEST_THREAD_CONTROL: "messaging_handovers",
    EventType.APP_ROLES: "messaging_handovers",
    EventType.POLICY_ENFORCEMENT: "messaging_policy_enforcement",
    EventType.ACCOUNT_LINKING: "messaging_account_linking",
    EventType.GAME_PLAY: "messaging_game_plays",
    EventType.RESPONSE_FEEDBACK: "response_feedback",
    EventType.MESSAGING_FEEDBACK: "messaging_feedback",
}
STANDBY_FIELD = "standby"
# Types Meta also delivers on standby[] to apps that do not own the thread (§3.14).
STANDBY_TYPES = frozenset(
    {
        EventType.TEXT,
        EventType.QUICK_REPLY,
        EventType.ATTACHMENT,
        EventType.ECHO,
        EventType.DELIVERY,
        EventType.READ,
        EventType.POSTBACK,
    }
)
# Types a bot is not expected to answer (receipts, echoes, platform notices).
NO_REPLY_TYPES = frozenset(
    {
        EventType.ECHO,
        EventType.DELIVERY,
        EventType.READ,
        EventType.APP_ROLES,
        EventType.POLICY_ENFORCEMENT,
        EventType.PASS_THREAD_CONTROL,
        EventType.TAKE_THREAD_CONTROL,
        EventType.REQUEST_THREAD_CONTROL,
        EventType.RESPONSE_FEEDBACK,
    }
)

REACTION_EMOJI = {
    "smile": "\U0001f606",
    "angry": "\U0001f620",
    "sad": "\U0001f622",
    "wow": "\U0001f62e",
    "love": "\u2764\ufe0f",
    "like": "\U0001f44d",
    "dislike": "\U0001f44e",
    "other": "\U0001f525",
}


def subscription_field(event_type: EventType, *, standby: bool = False) -> str:
    """The field that must be subscribed for this event to be delivered."""
    return STANDBY_FIELD if standby else EVENT_FIELDS[event_type]


@dataclass(frozen=True, slots=True)
class BuiltEvent:
    """One messaging object plus what the delivery engine and journal need to know about it."""

    event_type: EventType
    event: dict[str, Any]
    page_id: str
    psid: str | None
    mid: str | None
    standby: bool = False

    @property
    def field(self) -> str:
        return subscription_field(self.event_type, standby=self.standby)

    @property
    def timestamp_ms(self) -> int:
        return int(self.event.get("timestamp", 0))

    @property
    def expects_reply(self) -> bool:
        return not self.standby and self.event_type not in NO_REPLY_TYPES

    def entry(self, *, time_ms: int) -> dict[str, Any]:
        return entry(self.page_id, [self.event], time_ms=time_ms, standby=self.standby)


def entry(
    page_id: str, events: Sequence[dict[str, Any]], *, time_ms: int, standby: bool = False
) -> dict[str, Any]:
    """``{id, time, messaging|standby: [...]}``; Meta puts one event per entry."""
    return {"id": page_id, "time": time_ms, ("standby" if standby else "messaging"): list(events)}


def envelope(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The webhook body: ``{"object": "page", "entry": [...]}``."""
    return {"object": "page", "entry": list(entries)}


def as_standby(built: BuiltEvent) -> BuiltEvent:
    """The copy a non-owner app receives on ``standby[]`` (postbacks lose their payload)."""
    if built.event_type not in STANDBY_TYPES:
        raise ValueError(f"{built.event_type.value} events are not delivered on standby")
    event = dict(built.event)
    if "postback" in event:
        event["postback"] = {k: v for k, v in event["postback"].items() if k != "payload"}
    return replace(built, event=event, standby=True)


class EventBuilder:
    """Builds events stamped with ``clock`` time; ids come from ``rng`` (seed it for replays)."""

    def __init__(self, clock: Clock, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()

    # ---- ids -------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    def new_mid(self) -> str:
        return "m_" + self._token(42)

    def new_digits(self, length: int = 15) -> str:
        first = str(self._rng.randint(1, 9))
        return first + "".join(str(self._rng.randint(0, 9)) for _ in range(length - 1))

    def cdn_url(self, ext: str = "jpg") -> str:
        name = f"{self.new_digits(9)}_{self.new_digits(15)}_n.{ext}"
        return f"https://scontent.xx.fbcdn.net/v/t1.15752-9/{name}?_nc_cat=1&oh={self._hex(32)}"

    # ---- messages ------------------------------------------------------------------------
    def text(
        self,
        page_id: str,
        psid: str,
        text: str,
        *,
        reply_to: str | None = None,
        mid: str | None = None,
        standby: bool = False,
    ) -> BuiltEvent:
        message: dict[str, Any] = {"mid": mid or self.new_mid(), "text": text}
        if reply_to is not None:
            message["reply_to"] = {"mid": reply_to, "is_self_reply": False}
        return self._message(EventType.TEXT, page_id, psid, message, standby)

    def quick_reply(
        self, page_id: str, psid: str, title: str, payload: str, *, standby: bool = False
    ) -> BuiltEvent:
        message = {"mid": self.new_mid(), "text": title, "quick_reply": {"payload": payload}}
        return self._message(EventType.QUICK_REPLY, page_id, psid, message, standby)

    def attachment(
        self,
        page_id: str,
        psid: str,
        kind: str = "image",
        *,
        url: str | None = None,
        count: int = 1,
        text: str | None = None,
        standby: bool = False,
    ) -> BuiltEvent:
        """``image|audio|video|file`` attachments (several photos arrive in one message)."""
        ext = {"image": "jpg", "audio": "mp4", "video": "mp4", "file": "pdf"}.get(kind, "bin")
        items = [{"type": kind, "payload": {"url": url or self.cdn_url(ext)}} for _ in range(count)]
        return self._attachments(page_id, psid, items, text, standby)

    def sticker(
        self,
        page_id: str,
        psid: str,
        sticker_id: int = LIKE_STICKER_ID,
        *,
        with_image_copy: bool = True,
    ) -> BuiltEvent:
        """2026 transition shape: a ``sticker`` attachment plus the legacy ``image`` copy."""
        url = self.cdn_url("png")
        items = [{"type": "sticker", "payload": {"url": url, "sticker_id": sticker_id}}]
        if with_image_copy:
            items.append({"type": "image", "payload": {"url": url, "sticker_id": sticker_id}})
        return self._attachments(page_id, psid, items, None, False)

    def fallback(
        self,
        page_id: str,
        psid: str,
        url: str,
        *,
        title: str | None = None,
        text: str | None = None,
    ) -> BuiltEvent:
        """A shared link: ``text`` with the link and a ``fallback`` attachment."""
        payload: dict[str, Any] = {"url": f"https://l.facebook.com/l.php?u={url}"}
        if title is not None:
            payload["title"] = title
        items = [{"type": "fallback", "payload": payload}]
        return self._attachments(page_id, psid, items, text if text is not None else url, False)

    def location(self, page_id: str, psid: str, lat: float, long: float) -> BuiltEvent:
        """Legacy location share (§3.4) [U]."""
        items = [
            {
                "title": "Pin",
                "url": f"https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps%2F%3Fq%3D{lat}%252C{long}",
                "type": "location",
                "payload": {"coordinates": {"lat": lat, "long": long}},
            }
        ]
        return self._attachments(page_id, psid, items, None, False)

    def referral_message(
        self,
        page_id: str,
        psid: str,
        text: str,
        *,
        ref: str | None = None,
        ad_id: str | None = None,
        ad_title: str = "Summer sale",
    ) -> BuiltEvent:
        """A message sent after tapping a Click-to-Messenger ad (needs `messages` too)."""
        referral: dict[str, Any] = {"source": "ADS", "type": "OPEN_THREAD"}
        if ref is not None:
            referral["ref"] = ref
        referral["ad_id"] = ad_id or self.new_digits(17)
        referral["ads_context_data"] = {
            "ad_title": ad_title,
            "photo_url": self.cdn_url("jpg"),
            "post_id": f"{page_id}_{self.new_digits(15)}",
        }
        message = {"mid": self.new_mid(), "text": text, "referral": referral}
        return self._message(EventType.REFERRAL_MESSAGE, page_id, psid, message, False)

    def echo(
        self,
        page_id: str,
        psid: str,
        *,
        app_id: int | str,
        text: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: str | None = None,
        mid: str | None = None,
        standby: bool = False,
    ) -> BuiltEvent:
        """The Page's own message coming back; sender and recipient are inverted."""
        message: dict[str, Any] = {"is_echo": True, "app_id": _app_id_number(app_id)}
        if metadata is not None:
            message["metadata"] = metadata
        message["mid"] = mid or self.new_mid()
        if text is not None:
            message["text"] = text
        if attachments:
            message["attachments"] = attachments
        event = {
            "sender": {"id": page_id},
            "recipient": {"id": psid},
            "timestamp": self.now_ms(),
            "message": message,
        }
        return BuiltEvent(EventType.ECHO, event, page_id, psid, message["mid"], standby)

    # ---- receipts and reactions ------------------------------------------------------------
    def delivery(
        self,
        page_id: str,
        psid: str,
        mids: list[str] | None,
        watermark_ms: int,
        *,
        standby: bool = False,
    ) -> BuiltEvent:
        body: dict[str, Any] = {"watermark": watermark_ms}
        if mids:
            body = {"mids": list(mids), "watermark": watermark_ms}
        return self._simple(EventType.DELIVERY, page_id, psid, "delivery", body, standby=standby)

    def read(
        self, page_id: str, psid: str, watermark_ms: int, *, standby: bool = False
    ) -> BuiltEvent:
        body = {"watermark": watermark_ms}
        return self._simple(EventType.READ, page_id, psid, "read", body, standby=standby)

    def reaction(
        self,
        page_id: str,
        psid: str,
        mid: str,
        reaction: str = "love",
        *,
        action: str = "react",
        unreact_keeps_reaction: bool = False,
    ) -> BuiltEvent:
        """``action="unreact"`` drops ``reaction``/``emoji`` unless told to keep them [U]."""
        if reaction not in REACTION_EMOJI:
            raise ValueError(f"reaction must be one of {sorted(REACTION_EMOJI)}")
        if action not in ("react", "unreact"):
            raise ValueError("action must be 'react' or 'unreact'")
        body: dict[str, Any] = {"reaction": reaction, "emoji": REACTION_EMOJI[reaction]}
        if action == "unreact" and not unreact_keeps_reaction:
            body = {}
        body.update({"action": action, "mid": mid})
        return self._simple(EventType.REACTION, page_id, psid, "reaction", body, mid=mid)

    def message_edit(
        self, page_id: str, psid: str, mid: str, text: str, *, num_edit: int = 1
    ) -> BuiltEvent:
        body = {"mid": mid, "text": text, "num_edit": num_edit}
        return self._simple(EventType.MESSAGE_EDIT, page_id, psid, "message_edit", body, mid=mid)

    # ---- postbacks, referrals, opt-ins -------------------------------------------------------
    def postback(
        self,
        page_id: str,
        psid: str,
        payload: str,
        *,
        title: str = "Get Started",
        ref: str | None = None,
        source: str = "SHORTLINK",
        standby: bool = False,
    ) -> BuiltEvent:
        """A button tap; ``ref`` adds the referral of a conversation opened via m.me / ad."""
        mid = self.new_mid()
        body: dict[str, Any] = {"mid": mid, "title": title}
        if not standby:  # only the app that sent the button gets the payload
            body["payload"] = payload
        if ref is not None:
            body["referral"] = {"ref": ref, "source": source, "type": "OPEN_THREAD"}
        return self._simple(
            EventType.POSTBACK, page_id, psid, "postback", body, mid=mid, standby=standby
        )

    def referral(
        self,
        page_id: str,
        psid: str,
        ref: str,
        *,
        source: str = "SHORTLINK",
        ad_id: str | None = None,
    ) -> BuiltEvent:
        body: dict[str, Any] = {"ref": ref, "source": source, "type": "OPEN_THREAD"}
        if ad_id is not None:
            body["ad_id"] = ad_id
        return self._simple(EventType.REFERRAL, page_id, psid, "referral", body)

    def optin(
        self,
        page_id: str,
        psid: str,
        *,
        payload: str = "SIGNUP",
        title: str = "Updates",
        frequency: str = "WEEKLY",
        timezone: str = "America/Los_Angeles",
        status: str | None = None,
        ref: str | None = None,
    ) -> BuiltEvent:
        """Marketing-messages opt-in; ``ref`` alone builds the Send-to-Messenger plugin shape."""
        if ref is not None:
            return self._simple(EventType.OPTIN, page_id, psid, "optin", {"ref": ref})
        now = self.now_ms()
        body: dict[str, Any] = {
            "type": "notification_messages",
            "title": title,
            "payload": payload,
            "notification_messages_token": self.new_digits(19),
            "notification_messages_frequency": frequency,
            "notification_messages_timezone": timezone,
            "token_expiry_timestamp": now + 365 * 86_400_000,
            "user_token_status": "NOT_REFRESHED",
        }
        if status is not None:
            body["notification_messages_status"] = status
        return self._simple(EventType.OPTIN, page_id, psid, "optin", body)

    # ---- handover ---------------------------------------------------------------------------
    def pass_thread_control(
        self,
        page_id: str,
        psid: str,
        *,
        previous_owner_app_id: str | None,
        new_owner_app_id: str,
        metadata: str | None = None,
    ) -> BuiltEvent:
        owners = (previous_owner_app_id, new_owner_app_id)
        return self._owner_change(EventType.PASS_THREAD_CONTROL, page_id, psid, owners, metadata)

    def take_thread_control(
        self,
        page_id: str,
        psid: str,
        *,
        previous_owner_app_id: str | None,
        new_owner_app_id: str,
        metadata: str | None = None,
    ) -> BuiltEvent:
        owners = (previous_owner_app_id, new_owner_app_id)
        return self._owner_change(EventType.TAKE_THREAD_CONTROL, page_id, psid, owners, metadata)

    def _owner_change(
        self,
        event_type: EventType,
        page_id: str,
        psid: str,
        owners: tuple[str | None, str],
        metadata: str | None,
    ) -> BuiltEvent:
        """Pass and take thread control share one shape: previous and new owner app ids."""
        body = {"previous_owner_app_id": owners[0], "new_owner_app_id": owners[1]}
        if metadata is not None:
            body["metadata"] = metadata
        return self._simple(event_type, page_id, psid, event_type.value, body)

    def request_thread_control(
        self, page_id: str, psid: str, *, requested_owner_app_id: int | str, metadata: str = ""
    ) -> BuiltEvent:
        body = {"requested_owner_app_id": _app_id_number(requested_owner_app_id)}
        if metadata:
            body["metadata"] = metadata
        return self._simple(
            EventType.REQUEST_THREAD_CONTROL, page_id, psid, "request_thread_control", body
        )

    def app_roles(self, page_id: str, roles: dict[str, list[str]]) -> BuiltEvent:
        """Role assignments; like policy enforcement it has no ``sender``."""
        event = {"recipient": {"id": page_id}, "timestamp": self.now_ms(), "app_roles": roles}
        return BuiltEvent(EventType.APP_ROLES, event, page_id, None, None)

    # ---- platform notices and the rest ---------------------------------------------------
    def policy_enforcement(
        self, page_id: str, action: str = "warning", *, reason: str | None = None
    ) -> BuiltEvent:
        if action not in ("warning", "block", "unblock"):
            raise ValueError("action must be warning, block or unblock")
        body: dict[str, Any] = {"action": action}
        if action != "unblock":
            body["reason"] = reason or "The bot violated our Platform Policies."
        event = {
            "recipient": {"id": page_id},
            "timestamp": self.now_ms(),
            "policy_enforcement": body,
        }
        return BuiltEvent(EventType.POLICY_ENFORCEMENT, event, page_id, None, None)

    def account_linking(
        self, page_id: str, psid: str, *, linked: bool = True, authorization_code: str = "PASS"
    ) -> BuiltEvent:
        body: dict[str, Any] = {"status": "linked" if linked else "unlinked"}
        if linked:
            body["authorization_code"] = authorization_code
        return self._simple(EventType.ACCOUNT_LINKING, page_id, psid, "account_linking", body)

    def game_play(
        self,
        page_id: str,
        psid: str,
        *,
        game_id: str = "111222333",
        score: int | None = 120,
        payload: str | None = None,
        context_type: str = "SOLO",
    ) -> BuiltEvent:
        body: dict[str, Any] = {
            "game_id": game_id,
            "player_id": self.new_digits(9),
            "locale": "en_US",
            "context_type": context_type,
            "context_id": None,
        }
        if score is not None:
            body["score"] = score
        if payload is not None:
            body["payload"] = payload
        return self._simple(EventType.GAME_PLAY, page_id, psid, "game_play", body)

    def response_feedback(
        self, page_id: str, psid: str, mid: str, *, good: bool = True
    ) -> BuiltEvent:
        body = {"feedback": "Good response" if good else "Bad response", "mid": mid}
        return self._simple(EventType.RESPONSE_FEEDBACK, page_id, psid, "response_feedback", body)

    def messaging_feedback(
        self,
        page_id: str,
        psid: str,
        *,
        score: int = 5,
        question_id: str = "hauydmns8",
        follow_up: str | None = None,
    ) -> BuiltEvent:
        """A customer-feedback template submission (CSAT score and optional free text)."""
        question: dict[str, Any] = {"type": "csat", "payload": str(score)}
        if follow_up is not None:
            question["follow_up"] = {"type": "free_form", "payload": follow_up}
        body = {"feedback_screens": [{"screen_id": 0, "questions": {question_id: question}}]}
        return self._simple(EventType.MESSAGING_FEEDBACK, page_id, psid, "messaging_feedback", body)

    # ---- internals ----------------------------------------------------------------------
    def _message(
        self,
        event_type: EventType,
        page_id: str,
        psid: str,
        message: dict[str, Any],
        standby: bool,
    ) -> BuiltEvent:
        event = {
            "sender": {"id": psid},
            "recipient": {"id": page_id},
            "timestamp": self.now_ms(),
            "message": message,
        }
        return BuiltEvent(event_type, event, page_id, psid, message["mid"], standby)

    def _attachments(
        self,
        page_id: str,
        psid: str,
        items: list[dict[str, Any]],
        text: str | None,
        standby: bool,
    ) -> BuiltEvent:
        message: dict[str, Any] = {"mid": self.new_mid()}
        if text is not None:
            message["text"] = text
        message["attachments"] = items
        return self._message(EventType.ATTACHMENT, page_id, psid, message, standby)

    def _simple(
        self,
        event_type: EventType,
        page_id: str,
        psid: str,
        key: str,
        body: dict[str, Any],
        *,
        mid: str | None = None,
        standby: bool = False,
    ) -> BuiltEvent:
        event = {
            "sender": {"id": psid},
            "recipient": {"id": page_id},
            "timestamp": self.now_ms(),
            key: body,
        }
        return BuiltEvent(event_type, event, page_id, psid, mid, standby)

    def _token(self, length: int) -> str:
        raw = self._rng.randbytes((length * 3 + 3) // 4)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")[:length]

    def _hex(self, length: int) -> str:
        return self._rng.randbytes((length + 1) // 2).hex()[:length]


def _app_id_number(app_id: int | str) -> int | str:
    # Meta's samples carry app ids as JSON numbers here; keep non-numeric ids as given.
    return int(app_id) if isinstance(app_id, str) and app_id.isdigit() else app_id
