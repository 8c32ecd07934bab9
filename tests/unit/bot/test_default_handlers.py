"""The reference bot's replies, driven through the public test client."""

from __future__ import annotations

import pytest

from bot.default_handlers import router
from bot.routing import load_router
from bot.testing import RouterClient, messaging_item, texts


@pytest.fixture
def client() -> RouterClient:
    return RouterClient(router)


async def test_text_is_echoed(client: RouterClient) -> None:
    assert texts(await client.text("hello")) == ["You said: hello"]


async def test_quick_reply_text_is_echoed(client: RouterClient) -> None:
    assert texts(await client.quick_reply("Red", "PICK_RED")) == ["You said: Red"]


async def test_attachment_is_acknowledged(client: RouterClient) -> None:
    message = {"mid": "m3", "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}
    replies = await client.item(messaging_item(message=message))
    assert texts(replies) == ["I received your attachment."]


async def test_get_started_postback_welcomes(client: RouterClient) -> None:
    assert texts(await client.postback("GET_STARTED")) == ["Welcome. Tell me what you need."]


@pytest.mark.parametrize("payload", ["MENU_HELP", "get_started"])
async def test_other_postbacks_name_their_payload(client: RouterClient, payload: str) -> None:
    assert texts(await client.postback(payload)) == [f"Postback received: {payload}"]


async def test_reads_get_no_reply(client: RouterClient) -> None:
    assert await client.item(messaging_item(read={"watermark": 1})) == ()


def test_is_the_default_handlers_module() -> None:
    assert load_router("bot.default_handlers") is router
