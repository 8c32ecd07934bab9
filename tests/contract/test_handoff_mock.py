"""Handoff and personas against the mock's Conversation Routing and persona endpoints.

The mock gains these endpoints in a parallel change; until then each test skips, naming why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.handoff import PAGE_INBOX_APP_ID, Handoff
from bot.page_api import PageApi, PageApiError
from bot.personas import Personas
from bot.reply import Reply
from bot.testing import PSID, make_settings
from mock_meta.settings import DEFAULT_APP_ID
from tests.contract.graph_mock import BASE_URL, Mock, mock

__all__ = ["mock"]  # the fixture, imported for pytest

UNKNOWN_PATH = 2500  # the mock's answer for an endpoint it does not have


@pytest.fixture
async def page_api(mock: Mock) -> AsyncIterator[PageApi]:
    settings = make_settings(graph_api_base=BASE_URL)
    async with PageApi(settings, transport=mock.transport) as api:
        yield api


def _skip_if_missing(exc: PageApiError, what: str) -> None:
    if exc.code == UNKNOWN_PATH:
        pytest.skip(f"the mock has no {what} endpoints yet")


async def test_the_thread_goes_to_the_agents_and_comes_back(page_api: PageApi) -> None:
    handoff = Handoff(page_api)
    try:
        await handoff.pass_to_agent(PSID, metadata="asked for a person")
    except PageApiError as exc:
        _skip_if_missing(exc, "thread control")
        raise
    assert await handoff.owner(PSID) == PAGE_INBOX_APP_ID
    await handoff.take_back(PSID, metadata="bot resumes")
    assert await handoff.owner(PSID) == DEFAULT_APP_ID  # the bot's app


async def test_a_reply_sent_as_a_new_persona_is_accepted(mock: Mock, page_api: PageApi) -> None:
    try:
        persona_id = await Personas(page_api).create("Adam", "https://example.com/adam.png")
    except PageApiError as exc:
        _skip_if_missing(exc, "persona")
        raise
    reply = Reply.text("Hi, Adam here").as_persona(persona_id)
    answer = await mock.send(
        {"recipient": {"id": PSID}, "message": reply.message, **reply.send_options()}
    )
    assert answer.status_code == 200, answer.text
