"""Reply accounting end to end: the cases of issue 8, with a naive bot and with ours.

Real servers on loopback: the mock's delivery engine, a bot answering through the Send API,
and the journal summary a load run reads (``GET /_mock/journal/summary``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mock_meta.client import MockMetaClient
from mock_meta.testing import EchoBotWorld, echo_bot_world
from tests.contract.bot_mock_pair import StartPair
from tests.polling import eventually

PSID = "6543210987654321"
SETTLE_SECONDS = 15.0


@pytest.fixture
async def naive() -> AsyncIterator[EchoBotWorld]:
    async with echo_bot_world() as world:
        yield world


async def settled_summary(mock: MockMetaClient, **expected: int) -> dict[str, Any]:
    """The journal summary once nothing is in flight and ``expected`` counts are reached."""

    async def check() -> dict[str, Any] | None:
        summary: dict[str, Any] = await mock.request("GET", "/_mock/journal/summary")
        settled = summary["in_flight"] == 0 and summary["replies_held"] == 0
        reached = all(summary[key] >= value for key, value in expected.items())
        return summary if settled and reached else None

    result: dict[str, Any] = await eventually(check, within=SETTLE_SECONDS)
    return result


async def test_a_reaction_then_a_duplicated_text_shows_the_naive_bots_extra_reply(
    naive: EchoBotWorld,
) -> None:
    user = naive.mock.user(PSID)
    first = await user.send_text("hello")
    await naive.mock.wait_for_reply(PSID, first.action_id, timeout=10)
    await user.act("reaction", reaction="like")  # on the bot's last message
    await naive.mock.request("PUT", "/_mock/chaos", json={"duplicate_probability": 1.0})
    await user.send_text("again")
    summary = await settled_summary(naive.mock, answered=2, extra_replies=1)
    assert (summary["owed"], summary["unanswered"], summary["extra_replies"]) == (2, 0, 1)
    assert summary["no_reply_expected"] == 1


async def test_after_an_outage_dropped_messages_are_undelivered_not_unanswered(
    naive: EchoBotWorld,
) -> None:
    # Give up on the first failure so the outage's events are dropped at once.
    profile = {"immediate_retries": 0, "give_up_after": 0.5}
    await naive.mock.request("PUT", "/_mock/settings", json={"retry_profile": profile})
    naive.bot.down = True
    user = naive.mock.user(PSID)
    for n in range(5):
        lost = await user.send_text(f"during the outage {n}")
        await naive.mock.wait_for_delivery(lost.action_id, timeout=10)
    naive.bot.down = False
    back = await user.send_text("after the outage")
    reply = await naive.mock.wait_for_reply(PSID, back.action_id, timeout=10)
    assert reply.message == {"text": "echo: after the outage"}
    summary = await settled_summary(naive.mock, answered=1)
    assert (summary["undelivered"], summary["unanswered"], summary["answered"]) == (5, 0, 1)
    answered = await naive.mock.request("GET", "/_mock/journal/sends", params={"psid": PSID})
    assert [s["answers_mid"] for s in answered["items"] if s["kind"] == "message"] == [
        back.action_id
    ]


async def test_actions_while_unsubscribed_are_undelivered_and_answers_resume_after(
    naive: EchoBotWorld,
) -> None:
    path = "/v25.0/104501234567890/subscribed_apps"
    token = {"access_token": "test_page_token"}
    await naive.mock.request("DELETE", path, params=token)
    user = naive.mock.user(PSID)
    await user.send_text("anyone there?")
    await naive.mock.request("POST", path, params={**token, "subscribed_fields": "messages"})
    back = await user.send_text("back again")
    await naive.mock.wait_for_reply(PSID, back.action_id, timeout=10)
    summary = await settled_summary(naive.mock, answered=1)
    assert (summary["undelivered"], summary["unanswered"], summary["extra_replies"]) == (1, 0, 0)


async def test_our_bot_answering_every_message_leaves_nothing_unanswered(
    start_pair: StartPair,
) -> None:
    pair = await start_pair()
    user = pair.mock.user(PSID)
    first = await user.send_text("hi")
    await pair.mock.wait_for_reply(PSID, first.action_id, timeout=10)
    await user.read()
    await user.act("reaction", reaction="love")
    await pair.mock.request("PUT", "/_mock/chaos", json={"duplicate_probability": 1.0})
    second = await user.send_text("and again")
    await pair.mock.wait_for_reply(PSID, second.action_id, timeout=10)
    summary = await settled_summary(pair.mock, answered=2)
    assert (summary["owed"], summary["answered"], summary["unanswered"]) == (2, 2, 0)
    assert summary["extra_replies"] == 0  # the bot skipped the redelivered text
