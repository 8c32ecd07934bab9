"""The ``/_mock/wait/*`` long-polls: any action by its action id, clear 4xx, and many at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from mock_meta.testing import EchoBotWorld, echo_bot_world

PSID = "6543210987654321"


@pytest.fixture
async def world() -> AsyncIterator[EchoBotWorld]:
    async with echo_bot_world() as world:
        yield world


async def test_a_read_which_has_no_mid_is_awaited_by_its_action_id(world: EchoBotWorld) -> None:
    read = await world.mock.user(PSID).read()
    assert read.mid is None and read.action_id.startswith("act_")
    record = await world.mock.wait_for_delivery(read.action_id, timeout=10)
    assert (record["event_type"], record["state"]) == ("read", "delivered")


async def test_a_reaction_is_its_own_action_not_the_message_it_targets(world: EchoBotWorld) -> None:
    user = world.mock.user(PSID)
    text = await user.send_text("hi")
    reply = await world.mock.wait_for_reply(None, text.action_id, timeout=10)  # psid not needed
    reaction = await user.act("reaction", target_mid=reply.message_id)
    assert reaction.mid == reply.message_id and reaction.action_id != reply.message_id
    record = await world.mock.wait_for_delivery(reaction.action_id, timeout=10)
    assert record["event_type"] == "reaction"
    action = await world.mock.request(
        "GET", "/_mock/journal/actions", params={"mid": text.action_id}
    )
    assert [a["state"] for a in action["items"]] == ["answered"]  # not overwritten


async def test_wait_parameters_get_a_clear_4xx(world: EchoBotWorld) -> None:
    client = world.server.base_url
    async with httpx.AsyncClient(base_url=client, trust_env=False) as http:
        unknown = await http.get("/_mock/wait/reply", params={"action_id": "m_nope"})
        neither = await http.get("/_mock/wait/delivery")
        clash = await http.get("/_mock/wait/delivery", params={"action_id": "a", "mid": "b"})
        nan = await http.get("/_mock/wait/no-reply", params={"psid": PSID, "within": "nan"})
    assert unknown.status_code == 404 and "psid" in unknown.json()["detail"]
    assert neither.status_code == 422 and "action_id" in neither.json()["detail"]
    assert clash.status_code == 422
    assert nan.status_code == 422


async def test_a_thousand_concurrent_long_polls_return_within_their_timeout_plus_a_margin(
    world: EchoBotWorld,
) -> None:
    timeout, margin = 1.0, 2.0  # the margin absorbs a loaded 2-core CI machine
    transport = httpx.ASGITransport(world.server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as http:

        async def overshoot(n: int) -> float:
            started = time.perf_counter()
            answer = await http.get(
                "/_mock/wait/no-reply", params={"psid": f"9{n:015d}", "within": timeout}
            )
            assert answer.status_code == 200
            return time.perf_counter() - started - timeout

        overshoots = await asyncio.gather(*(overshoot(n) for n in range(1_000)))
    assert max(overshoots) < margin
    assert world.server.runtime.journal.tracked_psids == 0  # waiters leave nothing behind
