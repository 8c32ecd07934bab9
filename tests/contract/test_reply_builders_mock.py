"""Every reply builder's output is accepted by the mock's Send API validation, and where
the mock checks a limit, the builder's limit is the same one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bot import limits, messages
from bot.limits import LimitError
from bot.messages import QuickReply
from bot.metrics import BotMetrics
from bot.reply import Reply
from bot.send_api import HttpSendApi
from bot.templates import (
    CallButton,
    Element,
    PostbackButton,
    UrlButton,
    button_template,
    generic_template,
    media_template,
)
from bot.testing import PAGE_ID, PSID, make_settings
from tests.contract.graph_mock import BASE_URL, Mock, mock

__all__ = ["mock"]  # the fixture, imported for pytest


def send_fields(reply: Reply) -> dict[str, Any]:
    """The Send API fields for ``reply`` (contracts §2: a sender action goes without message)."""
    fields: dict[str, Any] = {"recipient": {"id": PSID}}
    if reply.sender_action is not None:
        fields["sender_action"] = reply.sender_action
    else:
        fields.update(messaging_type=reply.messaging_type, message=reply.message)
    if reply.tag is not None:
        fields["tag"] = reply.tag
    if reply.persona_id is not None:
        fields["persona_id"] = reply.persona_id
    return fields


@dataclass(frozen=True)
class Assets:
    """Ids the mock knows: an uploaded attachment and a persona of the page."""

    attachment_id: str
    persona_id: str


@pytest.fixture
def assets(mock: Mock) -> Assets:
    runtime = mock.runtime
    attachment_id = runtime.attachments.save(
        PAGE_ID, "file", "https://example.com/a.pdf", now=runtime.clock.now()
    )
    persona = runtime.personas.create(PAGE_ID, "Adam", "https://example.com/adam.jpg")
    return Assets(attachment_id, persona.persona_id)


NO_ASSETS = Assets("0", "0")

BUILT: dict[str, Callable[[Assets], Reply]] = {
    "text": lambda _: Reply.text("hi"),
    "text with quick replies": lambda _: messages.text(
        "Pick", quick_replies=[QuickReply("Red", "RED"), QuickReply.email()]
    ),
    "image by url": lambda _: messages.image(url="https://example.com/a.jpg", is_reusable=True),
    "file by attachment id": lambda a: messages.file(attachment_id=a.attachment_id),
    "audio": lambda _: messages.audio(url="https://example.com/a.mp3"),
    "video": lambda _: messages.video(url="https://example.com/a.mp4"),
    "images": lambda _: messages.images(["https://example.com/1.jpg"] * 3),
    "button template": lambda _: button_template(
        "Help?",
        [
            PostbackButton("Agent", "HUMAN"),
            UrlButton("FAQ", "https://example.com"),
            CallButton("Call", "+15105551234"),
        ],
    ),
    "generic template": lambda _: generic_template(
        [Element("Tea", subtitle="3 EUR", buttons=[PostbackButton("Buy", "BUY")])] * 10,
        quick_replies=[QuickReply("More", "MORE")],
    ),
    "media template": lambda a: media_template("image", attachment_id=a.attachment_id),
    "tagged": lambda _: messages.text("An agent answers", tag="HUMAN_AGENT"),
    "persona": lambda a: Reply.text("Hi, I'm Adam").as_persona(a.persona_id),
    "metadata": lambda _: messages.text("hi", metadata="order-7781"),
    "typing_on": lambda _: messages.typing_on(),
    "typing_off": lambda _: messages.typing_off(),
    "mark_seen": lambda _: messages.mark_seen(),
}


@pytest.mark.parametrize("name", BUILT)
async def test_the_mock_accepts_what_each_builder_builds(
    mock: Mock, assets: Assets, name: str
) -> None:
    answer = await mock.send(send_fields(BUILT[name](assets)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["recipient_id"] == PSID


# (builder at the limit, the same message one past it as a raw dict)
AT_AND_PAST_LIMIT: dict[str, tuple[Callable[[], Reply], dict[str, Any]]] = {
    "text length": (
        lambda: messages.text("x" * limits.TEXT),
        {"text": "x" * (limits.TEXT + 1)},
    ),
    "quick reply count": (
        lambda: messages.text("x", quick_replies=[QuickReply("t", "P")] * limits.QUICK_REPLIES),
        {"text": "x", "quick_replies": [{"content_type": "text", "title": "t"}] * 14},
    ),
    "quick reply title": (
        lambda: messages.text("x", quick_replies=[QuickReply("t" * limits.QUICK_REPLY_TITLE, "P")]),
        {"text": "x", "quick_replies": [{"content_type": "text", "title": "t" * 21}]},
    ),
    "quick reply payload": (
        lambda: messages.text("x", quick_replies=[QuickReply("t", "p" * limits.PAYLOAD)]),
        {
            "text": "x",
            "quick_replies": [{"content_type": "text", "title": "t", "payload": "p" * 1001}],
        },
    ),
    "metadata": (
        lambda: messages.text("x", metadata="m" * limits.METADATA),
        {"text": "x", "metadata": "m" * (limits.METADATA + 1)},
    ),
    "image count": (
        lambda: messages.images(["https://example.com/a.jpg"] * limits.IMAGES),
        {"attachments": [{"type": "image", "payload": {"url": "https://e.com/a.jpg"}}] * 31},
    ),
}


@pytest.mark.parametrize("name", AT_AND_PAST_LIMIT)
async def test_builder_limits_are_the_mocks_limits(mock: Mock, name: str) -> None:
    at_limit, past_limit = AT_AND_PAST_LIMIT[name]
    accepted = await mock.send(send_fields(at_limit()))
    assert accepted.status_code == 200, accepted.text
    rejected = await mock.send(send_fields(Reply(past_limit)))
    assert rejected.status_code == 400 and rejected.json()["error"]["code"] == 100
    with pytest.raises(LimitError):
        _rebuild(past_limit)


def _rebuild(message: dict[str, Any]) -> Reply:
    """Build ``message`` again through the builders (they must refuse it)."""
    if "attachments" in message:
        return messages.images([a["payload"]["url"] for a in message["attachments"]])
    quick = [
        QuickReply(q.get("title"), q.get("payload", "P")) for q in message.get("quick_replies", [])
    ]
    return messages.text(message["text"], quick_replies=quick, metadata=message.get("metadata"))


MESSAGES = [name for name, build in BUILT.items() if build(NO_ASSETS).sender_action is None]


@pytest.mark.parametrize("name", MESSAGES)
async def test_the_bots_send_api_client_delivers_each_built_message(
    mock: Mock, assets: Assets, name: str
) -> None:
    reply = BUILT[name](assets)
    settings = make_settings(graph_api_base=BASE_URL, send_batch=False)
    api = HttpSendApi(settings, BotMetrics(CollectorRegistry()), transport=mock.transport)
    try:
        result = await api.send(
            PAGE_ID,
            PSID,
            reply.message,
            messaging_type=reply.messaging_type,
            tag=reply.tag,
            **reply.send_options(),
        )
    finally:
        await api.aclose()
    assert result.ok, (result.error_code, result.error_subcode)
    sends = mock.runtime.journal.sends(psid=PSID)
    assert sends[-1].request["message"] == reply.message
