"""Reply builders: the Send API shapes they produce and the limits they enforce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import limits, messages
from bot.limits import LimitError
from bot.messages import QuickReply
from bot.reply import Reply
from bot.templates import (
    Button,
    CallButton,
    Element,
    PostbackButton,
    UrlButton,
    button_template,
    generic_template,
    media_template,
)


def test_text_with_quick_replies_of_each_content_type() -> None:
    reply = messages.text(
        "Pick one",
        quick_replies=[
            QuickReply("Red", "PICK_RED", image_url="https://example.com/red.png"),
            QuickReply.email(),
            QuickReply.phone_number(),
        ],
    )
    assert reply.message == {
        "text": "Pick one",
        "quick_replies": [
            {
                "content_type": "text",
                "title": "Red",
                "payload": "PICK_RED",
                "image_url": "https://example.com/red.png",
            },
            {"content_type": "user_email"},
            {"content_type": "user_phone_number"},
        ],
    }
    assert reply.messaging_type == "RESPONSE"


def test_attachments_by_url_or_saved_id() -> None:
    assert messages.video(url="https://example.com/v.mp4", is_reusable=True).message == {
        "attachment": {
            "type": "video",
            "payload": {"url": "https://example.com/v.mp4", "is_reusable": True},
        }
    }
    assert messages.file(attachment_id="1857777774821032").message == {
        "attachment": {"type": "file", "payload": {"attachment_id": "1857777774821032"}}
    }
    assert messages.images(["https://e.com/1.jpg", "https://e.com/2.jpg"]).message == {
        "attachments": [
            {"type": "image", "payload": {"url": "https://e.com/1.jpg"}},
            {"type": "image", "payload": {"url": "https://e.com/2.jpg"}},
        ]
    }


def test_sender_actions_carry_no_message() -> None:
    for build, action in [
        (messages.typing_on, "typing_on"),
        (messages.typing_off, "typing_off"),
        (messages.mark_seen, "mark_seen"),
    ]:
        reply = build()
        assert (reply.message, reply.sender_action) == ({}, action)


def test_tags_and_personas() -> None:
    reply = messages.text("An agent will reply", tag="HUMAN_AGENT").as_persona("p_1")
    assert (reply.messaging_type, reply.tag, reply.persona_id) == (
        "MESSAGE_TAG",
        "HUMAN_AGENT",
        "p_1",
    )
    assert messages.typing_on().as_persona("p_1").persona_id == "p_1"
    with pytest.raises(LimitError, match="retired on 27 Apr 2026"):
        Reply.text("Your order shipped", tag="POST_PURCHASE_UPDATE")
    with pytest.raises(LimitError, match="tag must be one of"):
        messages.text("hi", tag="MARKETING")


def test_metadata_is_kept_inside_the_message() -> None:
    assert messages.text("hi", metadata="order-7781").message == {
        "text": "hi",
        "metadata": "order-7781",
    }


def test_button_generic_and_media_templates() -> None:
    buttons: list[Button] = [
        PostbackButton("Agent", "HUMAN"),
        UrlButton("FAQ", "https://example.com/faq", webview_height_ratio="tall"),
        CallButton("Call us", "+15105551234"),
    ]
    payload = button_template("Need help?", buttons).message["attachment"]["payload"]
    assert payload == {
        "template_type": "button",
        "text": "Need help?",
        "buttons": [
            {"type": "postback", "title": "Agent", "payload": "HUMAN"},
            {
                "type": "web_url",
                "title": "FAQ",
                "url": "https://example.com/faq",
                "webview_height_ratio": "tall",
            },
            {"type": "phone_number", "title": "Call us", "payload": "+15105551234"},
        ],
    }
    card = Element(
        "Tea",
        subtitle="Green, 3 EUR",
        image_url="https://example.com/tea.jpg",
        default_url="https://example.com/tea",
        buttons=[PostbackButton("Buy", "BUY_TEA")],
    )
    generic = generic_template([card, Element("Coffee")], image_aspect_ratio="square")
    assert generic.message["attachment"]["payload"]["elements"][0] == {
        "title": "Tea",
        "subtitle": "Green, 3 EUR",
        "image_url": "https://example.com/tea.jpg",
        "default_action": {"type": "web_url", "url": "https://example.com/tea"},
        "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY_TEA"}],
    }
    media = media_template("video", attachment_id="42", buttons=[PostbackButton("More", "M")])
    assert media.message["attachment"]["payload"] == {
        "template_type": "media",
        "elements": [
            {
                "media_type": "video",
                "attachment_id": "42",
                "buttons": [{"type": "postback", "title": "More", "payload": "M"}],
            }
        ],
    }


def _qr(n: int) -> list[QuickReply]:
    return [QuickReply(f"o{i}", f"P{i}") for i in range(n)]


def _buttons(n: int) -> list[PostbackButton]:
    return [PostbackButton(f"b{i}", f"P{i}") for i in range(n)]


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (
            lambda: messages.text("x" * (limits.TEXT + 1)),
            "text is 2001 characters; the limit is 2000",
        ),
        (lambda: messages.text(""), "text must not be empty"),
        (lambda: messages.text("x", quick_replies=_qr(14)), "14 quick replies; the limit is 13"),
        (
            lambda: messages.text("x", quick_replies=[QuickReply("x" * 21, "P")]),
            "quick reply title",
        ),
        (
            lambda: messages.text("x", quick_replies=[QuickReply("t", "p" * 1001)]),
            "quick reply payload",
        ),
        (lambda: messages.text("x", quick_replies=[QuickReply(None, "P")]), "title or image_url"),
        (lambda: messages.text("x", metadata="m" * 1000), "metadata is 1000 characters"),
        (lambda: messages.image(), "exactly one of url or attachment_id"),
        (lambda: messages.image(url="u", attachment_id="1"), "exactly one of url or attachment_id"),
        (lambda: messages.image(url="ftp://x"), "http(s) URL"),
        (lambda: messages.file(attachment_id="1", is_reusable=True), "is_reusable"),
        (lambda: messages.images([]), "0 images; at least 1"),
        (lambda: messages.images(["https://e.com/a.jpg"] * 31), "31 images; the limit is 30"),
        (lambda: button_template("x" * 641, _buttons(1)), "button template text is 641"),
        (lambda: button_template("t", []), "0 buttons; at least 1"),
        (lambda: button_template("t", _buttons(4)), "4 buttons; the limit is 3"),
        (lambda: button_template("t", [PostbackButton("x" * 21, "P")]), "button title is 21"),
        (lambda: button_template("t", [CallButton("c", "5551234")]), "country code"),
        (lambda: generic_template([]), "0 generic template elements"),
        (lambda: generic_template([Element("e")] * 11), "11 generic template elements"),
        (lambda: generic_template([Element("x" * 81)]), "element title is 81"),
        (lambda: generic_template([Element("t", subtitle="s" * 81)]), "element subtitle is 81"),
        (lambda: generic_template([Element("t", buttons=_buttons(4))]), "4 buttons per element"),
        (lambda: media_template("image"), "exactly one of attachment_id or url"),
        (
            lambda: media_template("image", url="https://f.com/p", buttons=_buttons(4)),
            "4 buttons per media",
        ),
        (lambda: messages.typing_on().with_metadata("x"), "sender action cannot carry metadata"),
        (lambda: messages.text("x").as_persona(""), "persona_id must not be empty"),
    ],
)
def test_each_limit_is_checked_before_sending_and_named(
    build: Callable[[], Any], named: str
) -> None:
    with pytest.raises(LimitError, match=named.replace("(", r"\(").replace(")", r"\)")):
        build()
