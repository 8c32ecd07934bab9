"""The reference bot's replies."""

from __future__ import annotations

from typing import Any

import pytest

from bot.default_handlers import router
from bot.events import parse_event
from bot.routing import load_router

PAGE, USER = "104501234567890", "6543210987654321"


async def reply_to(**fields: Any) -> list[str]:
    item = {"sender": {"id": USER}, "recipient": {"id": PAGE}, "timestamp": 1, **fields}
    result = await router.dispatch(parse_event(item, page_id=PAGE))
    return [r.message["text"] for r in result.replies]


async def test_text_is_echoed() -> None:
    assert await reply_to(message={"mid": "m1", "text": "hello"}) == ["You said: hello"]


async def test_quick_reply_text_is_echoed() -> None:
    tap = {"mid": "m2", "text": "Red", "quick_reply": {"payload": "PICK_RED"}}
    assert await reply_to(message=tap) == ["You said: Red"]


async def test_attachment_is_acknowledged() -> None:
    message = {"mid": "m3", "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}
    assert await reply_to(message=message) == ["I received your attachment."]


async def test_get_started_postback_welcomes() -> None:
    postback = {"mid": "m4", "title": "Get Started", "payload": "GET_STARTED"}
    assert await reply_to(postback=postback) == ["Welcome. Tell me what you need."]


@pytest.mark.parametrize("payload", ["MENU_HELP", "get_started"])
async def test_other_postbacks_name_their_payload(payload: str) -> None:
    postback = {"mid": "m5", "title": "t", "payload": payload}
    assert await reply_to(postback=postback) == [f"Postback received: {payload}"]


async def test_reads_get_no_reply() -> None:
    assert await reply_to(read={"watermark": 1}) == []


def test_is_the_default_handlers_module() -> None:
    assert load_router("bot.default_handlers") is router
