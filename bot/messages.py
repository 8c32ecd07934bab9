"""Typed builders for Send API messages: text with quick replies, attachments, sender actions.

Each returns a :class:`bot.reply.Reply` and checks the platform's limits first, raising
:class:`bot.limits.LimitError` naming the limit. Templates live in :mod:`bot.templates`.

>>> from bot import messages
>>> reply = messages.text("Pick a colour", quick_replies=[QuickReply("Red", "PICK_RED")])
>>> reply.message["quick_replies"]
[{'content_type': 'text', 'title': 'Red', 'payload': 'PICK_RED'}]
>>> messages.image(url="https://example.com/a.jpg").message["attachment"]["type"]
'image'
>>> messages.typing_on().sender_action
'typing_on'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot import limits
from bot.limits import LimitError
from bot.reply import SENDER_ACTIONS, Reply

__all__ = [
    "QuickReply",
    "attachment",
    "audio",
    "file",
    "image",
    "images",
    "mark_seen",
    "sender_action",
    "text",
    "typing_off",
    "typing_on",
    "video",
    "with_quick_replies",
]

AttachmentType = Literal["image", "audio", "video", "file"]


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A quick-reply chip: ``QuickReply("Red", "PICK_RED")``; or ``email()``/``phone_number()``."""

    title: str | None
    payload: str | None = None
    image_url: str | None = None
    content_type: Literal["text", "user_email", "user_phone_number"] = "text"

    @classmethod
    def email(cls) -> QuickReply:
        """Offers the user's e-mail address (the tap arrives as a quick reply with it)."""
        return cls(None, content_type="user_email")

    @classmethod
    def phone_number(cls) -> QuickReply:
        return cls(None, content_type="user_phone_number")

    def to_dict(self) -> dict[str, Any]:
        if self.content_type != "text":
            return {"content_type": self.content_type}
        if self.title is None and not self.image_url:
            raise LimitError("quick reply title", "a text quick reply needs a title or image_url")
        out: dict[str, Any] = {"content_type": "text"}
        if self.title is not None:
            out["title"] = limits.check_length(
                "quick reply title", self.title, limits.QUICK_REPLY_TITLE
            )
        out["payload"] = limits.check_length(
            "quick reply payload", self.payload or "", limits.PAYLOAD
        )
        if self.image_url:
            out["image_url"] = self.image_url
        return out


def text(
    text: str,
    *,
    quick_replies: Sequence[QuickReply] = (),
    tag: str | None = None,
    metadata: str | None = None,
) -> Reply:
    """A text message (<= 2,000 characters), optionally with up to 13 quick replies."""
    message: dict[str, Any] = {"text": limits.check_length("text", text, limits.TEXT)}
    return _finish(message, quick_replies, tag, metadata)


def attachment(
    kind: AttachmentType,
    *,
    url: str | None = None,
    attachment_id: str | None = None,
    is_reusable: bool = False,
    quick_replies: Sequence[QuickReply] = (),
    tag: str | None = None,
    metadata: str | None = None,
) -> Reply:
    """A file by ``url`` or by a saved ``attachment_id`` (exactly one of them).

    ``is_reusable`` (with ``url``) asks Graph for an ``attachment_id`` to reuse for 90 days.
    """
    if kind not in ("image", "audio", "video", "file"):
        raise LimitError("attachment type", "attachment type must be image|audio|video|file")
    payload = _media_source(url, attachment_id)
    if is_reusable:
        if url is None:
            raise LimitError("is_reusable", "is_reusable only applies to an attachment by url")
        payload["is_reusable"] = True
    message = {"attachment": {"type": kind, "payload": payload}}
    return _finish(message, quick_replies, tag, metadata)


def image(*, url: str | None = None, attachment_id: str | None = None, **kw: Any) -> Reply:
    """``attachment("image", ...)``."""
    return attachment("image", url=url, attachment_id=attachment_id, **kw)


def audio(*, url: str | None = None, attachment_id: str | None = None, **kw: Any) -> Reply:
    return attachment("audio", url=url, attachment_id=attachment_id, **kw)


def video(*, url: str | None = None, attachment_id: str | None = None, **kw: Any) -> Reply:
    return attachment("video", url=url, attachment_id=attachment_id, **kw)


def file(*, url: str | None = None, attachment_id: str | None = None, **kw: Any) -> Reply:
    return attachment("file", url=url, attachment_id=attachment_id, **kw)


def images(urls: Sequence[str], *, tag: str | None = None) -> Reply:
    """Several images in one message (``message.attachments``, 1 to 30, images only)."""
    limits.check_count("images", urls, limits.IMAGES, least=1)
    items = [{"type": "image", "payload": _media_source(url, None)} for url in urls]
    return Reply.of({"attachments": items}, tag=tag)


def sender_action(action: Literal["typing_on", "typing_off", "mark_seen"]) -> Reply:
    """A typing indicator or read receipt: no message, only ``sender_action``."""
    if action not in SENDER_ACTIONS:
        raise LimitError("sender_action", f"sender_action must be one of {SENDER_ACTIONS}")
    return Reply({}, sender_action=action)


def typing_on() -> Reply:
    """Shows the typing indicator (until the next message or about 20 s)."""
    return sender_action("typing_on")


def typing_off() -> Reply:
    return sender_action("typing_off")


def mark_seen() -> Reply:
    return sender_action("mark_seen")


def with_quick_replies(reply: Reply, quick_replies: Sequence[QuickReply]) -> Reply:
    """``reply`` (a text or attachment message) with quick replies added."""
    if reply.sender_action is not None:
        raise LimitError("quick replies", "a sender action cannot carry quick replies")
    message = dict(reply.message)
    _add_quick_replies(message, quick_replies)
    return Reply.of(message, tag=reply.tag) if reply.tag else Reply(message, reply.messaging_type)


def _finish(
    message: dict[str, Any],
    quick_replies: Sequence[QuickReply],
    tag: str | None,
    metadata: str | None,
) -> Reply:
    _add_quick_replies(message, quick_replies)
    reply = Reply.of(message, tag=tag)
    return reply.with_metadata(metadata) if metadata is not None else reply


def _add_quick_replies(message: dict[str, Any], quick_replies: Sequence[QuickReply]) -> None:
    if not quick_replies:
        return
    limits.check_count("quick replies", quick_replies, limits.QUICK_REPLIES)
    message["quick_replies"] = [q.to_dict() for q in quick_replies]


def _media_source(url: str | None, attachment_id: str | None) -> dict[str, Any]:
    if (url is None) == (attachment_id is None):
        raise LimitError("attachment source", "give exactly one of url or attachment_id")
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise LimitError("attachment url", "attachment url must be an http(s) URL")
        return {"url": url}
    return {"attachment_id": str(attachment_id)}
