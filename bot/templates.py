"""Typed builders for template messages: buttons, generic (carousel) and media templates.

>>> from bot.templates import PostbackButton, UrlButton, button_template
>>> reply = button_template("Need help?", [PostbackButton("Talk to us", "HUMAN"),
...                                        UrlButton("FAQ", "https://example.com/faq")])
>>> reply.message["attachment"]["payload"]["template_type"]
'button'

Each builder checks the platform's limits (reference §5.4) and raises
:class:`bot.limits.LimitError` naming the one a template breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from bot import limits
from bot.limits import LimitError
from bot.messages import QuickReply, with_quick_replies
from bot.reply import Reply

__all__ = [
    "Button",
    "CallButton",
    "Element",
    "PostbackButton",
    "UrlButton",
    "button_template",
    "generic_template",
    "media_template",
]


@dataclass(frozen=True, slots=True)
class PostbackButton:
    """Sends ``payload`` back as a ``messaging_postbacks`` event when tapped."""

    title: str
    payload: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "postback",
            "title": limits.check_length("button title", self.title, limits.BUTTON_TITLE),
            "payload": limits.check_length("button payload", self.payload, limits.PAYLOAD),
        }


@dataclass(frozen=True, slots=True)
class UrlButton:
    """Opens ``url`` in the in-app browser (``webview_height_ratio`` compact|tall|full)."""

    title: str
    url: str
    webview_height_ratio: Literal["compact", "tall", "full"] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "web_url",
            "title": limits.check_length("button title", self.title, limits.BUTTON_TITLE),
            "url": _http_url("button url", self.url),
        }
        if self.webview_height_ratio is not None:
            out["webview_height_ratio"] = self.webview_height_ratio
        return out


@dataclass(frozen=True, slots=True)
class CallButton:
    """Dials ``phone_number`` (``+`` and country code, e.g. ``+15105551234``)."""

    title: str
    phone_number: str

    def to_dict(self) -> dict[str, Any]:
        if not self.phone_number.startswith("+"):
            raise LimitError(
                "button phone_number", "phone_number must start with + and a country code"
            )
        return {
            "type": "phone_number",
            "title": limits.check_length("button title", self.title, limits.BUTTON_TITLE),
            "payload": self.phone_number,
        }


Button: TypeAlias = PostbackButton | UrlButton | CallButton


@dataclass(frozen=True, slots=True)
class Element:
    """One card of a generic template (title <= 80, subtitle <= 80, <= 3 buttons)."""

    title: str
    subtitle: str | None = None
    image_url: str | None = None
    default_url: str | None = None  # opened when the card itself is tapped
    buttons: Sequence[Button] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": limits.check_length("element title", self.title, limits.ELEMENT_TITLE)
        }
        if self.subtitle is not None:
            out["subtitle"] = limits.check_length(
                "element subtitle", self.subtitle, limits.ELEMENT_SUBTITLE, required=False
            )
        if self.image_url is not None:
            out["image_url"] = _http_url("element image_url", self.image_url)
        if self.default_url is not None:
            out["default_action"] = {
                "type": "web_url",
                "url": _http_url("default_url", self.default_url),
            }
        if self.buttons:
            out["buttons"] = _buttons("buttons per element", self.buttons)
        return out


def button_template(
    text: str,
    buttons: Sequence[Button],
    *,
    quick_replies: Sequence[QuickReply] = (),
    tag: str | None = None,
) -> Reply:
    """Text (<= 640 characters) with 1 to 3 buttons under it."""
    payload = {
        "template_type": "button",
        "text": limits.check_length("button template text", text, limits.BUTTON_TEXT),
        "buttons": _buttons("buttons", buttons, least=1),
    }
    return _template(payload, quick_replies, tag)


def generic_template(
    elements: Sequence[Element],
    *,
    image_aspect_ratio: Literal["horizontal", "square"] | None = None,
    quick_replies: Sequence[QuickReply] = (),
    tag: str | None = None,
) -> Reply:
    """A card, or a carousel of up to 10 cards."""
    limits.check_count("generic template elements", elements, limits.ELEMENTS, least=1)
    payload: dict[str, Any] = {
        "template_type": "generic",
        "elements": [element.to_dict() for element in elements],
    }
    if image_aspect_ratio is not None:
        payload["image_aspect_ratio"] = image_aspect_ratio
    return _template(payload, quick_replies, tag)


def media_template(
    media_type: Literal["image", "video"],
    *,
    attachment_id: str | None = None,
    url: str | None = None,
    buttons: Sequence[Button] = (),
    tag: str | None = None,
) -> Reply:
    """One image or video by ``attachment_id`` or Facebook ``url``, with up to 3 buttons."""
    if media_type not in ("image", "video"):
        raise LimitError("media_type", "media_type must be image or video")
    if (url is None) == (attachment_id is None):
        raise LimitError("media source", "give exactly one of attachment_id or url")
    element: dict[str, Any] = {"media_type": media_type}
    if attachment_id is not None:
        element["attachment_id"] = str(attachment_id)
    else:
        element["url"] = _http_url("media url", str(url))
    if buttons:
        element["buttons"] = _buttons("buttons per media element", buttons)
    return _template({"template_type": "media", "elements": [element]}, (), tag)


def _template(
    payload: dict[str, Any], quick_replies: Sequence[QuickReply], tag: str | None
) -> Reply:
    reply = Reply.of({"attachment": {"type": "template", "payload": payload}}, tag=tag)
    return with_quick_replies(reply, quick_replies) if quick_replies else reply


def _buttons(what: str, buttons: Sequence[Button], *, least: int = 0) -> list[dict[str, Any]]:
    limits.check_count(what, buttons, limits.BUTTONS, least=least)
    return [button.to_dict() for button in buttons]


def _http_url(what: str, url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise LimitError(what, f"{what} must be an http(s) URL")
    return url
