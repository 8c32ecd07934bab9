"""The control API end to end on loopback: a simulated user reaches a bot-like receiver, the
receiver answers through the Send API, and the waits/journal/faults/clock report it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from mock_meta.client import ReplyTimeout, UnexpectedReply
from mock_meta.testing import EchoBotWorld, echo_bot_world

PSID = "6543210987654321"
SECRET = "test_app_secret"


World = EchoBotWorld


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with echo_bot_world() as world:
        yield world


async def test_user_text_reaches_the_bot_signed_and_the_reply_is_awaited(world: World) -> None:
    action = await world.mock.user(PSID).send_text("hi")
    reply = await world.mock.wait_for_reply(PSID, action.action_id, timeout=10)
    assert reply.message == {"text": "echo: hi"}
    assert reply.time_to_reply_seconds is not None and reply.time_to_reply_seconds >= 0
    assert reply.ack_latency_seconds is not None and reply.ack_latency_seconds > 0
    assert world.bot.bad_signatures == 0
    assert world.bot.received[0]["message"]["mid"] == action.mid  # type: ignore[index]


async def test_wait_reply_times_out_with_408_when_the_bot_stays_silent(world: World) -> None:
    world.bot.silent = True
    action = await world.mock.user(PSID).send_text("anyone?")
    with pytest.raises(ReplyTimeout) as info:
        await world.mock.wait_for_reply(PSID, action.action_id, timeout=0.3)
    assert info.value.status == 408


async def test_wait_no_reply_passes_on_silence_and_409s_on_a_message(world: World) -> None:
    world.bot.silent = True
    await world.mock.user(PSID).send_text("quiet please")
    await world.mock.wait_for_no_reply(PSID, within=0.3)
    world.bot.silent = False
    waiting = asyncio.create_task(world.mock.wait_for_no_reply(PSID, within=10))
    await world.mock.user(PSID).send_text("talk to me")
    with pytest.raises(UnexpectedReply) as info:
        await waiting
    assert info.value.status == 409


async def test_wait_delivery_reports_the_acknowledged_webhook(world: World) -> None:
    action = await world.mock.user(PSID).tap_postback("GET_STARTED")
    record = await world.mock.wait_for_delivery(action.action_id, timeout=10)
    assert record["state"] == "delivered" and record["attempts"][0]["status"] == 200
    assert world.bot.received[0]["postback"]["payload"] == "GET_STARTED"  # type: ignore[index]


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"type": "quick_reply", "text": "Red", "payload": "RED"}, "message"),
        ({"type": "attachment", "attachment_type": "file"}, "message"),
        ({"type": "referral", "ref": "summer"}, "referral"),
        ({"type": "optin", "payload": "NEWS"}, "optin"),
        ({"type": "read"}, "read"),
        ({"type": "reaction", "target_mid": "m_x"}, "reaction"),
        ({"type": "message_edit", "target_mid": "m_x", "text": "fixed"}, "message_edit"),
        ({"type": "handover"}, "pass_thread_control"),
        ({"type": "policy_enforcement", "action": "block"}, "policy_enforcement"),
        ({"type": "account_linking"}, "account_linking"),
        ({"type": "game_play", "score": 3}, "game_play"),
        ({"type": "feedback", "score": 4}, "messaging_feedback"),
    ],
)
async def test_every_action_type_is_delivered_with_its_event_key(
    world: World, fields: dict[str, object], key: str
) -> None:
    world.bot.silent = True
    type_ = str(fields.pop("type"))
    action = await world.mock.user(PSID).act(type_, **fields)
    record = await world.mock.wait_for_delivery(action.action_id, timeout=10)
    assert record["state"] == "delivered"
    assert key in world.bot.received[-1]


async def test_bad_actions_are_4xx_with_a_reason(world: World) -> None:
    http = world.mock
    for path, body, status in [
        (f"/_mock/users/{PSID}/actions", {"type": "dance"}, 422),
        (f"/_mock/users/{PSID}/actions", {"type": "text"}, 422),
        (f"/_mock/users/{PSID}/actions", {"type": "text", "text": ""}, 400),
        (f"/_mock/users/{PSID}/actions", {"type": "read", "text": "x"}, 422),
        (f"/_mock/users/{PSID}/actions", {"type": "text", "text": "x", "evil": 1}, 422),
        ("/_mock/users/42/actions", {"type": "text", "text": "x"}, 404),
    ]:
        with pytest.raises(Exception) as info:
            await http.request("POST", path, json=body)
        assert getattr(info.value, "status", None) == status


async def test_armed_fault_fails_the_next_send_then_clears_itself(world: World) -> None:
    world.bot.silent = True
    await world.mock.user(PSID).send_text("open the window")
    armed = await world.mock.arm_fault(code=2, count=1)
    assert [f["id"] for f in await world.mock.faults()] == [armed["id"]]
    async with httpx.AsyncClient(base_url=world.server.base_url) as graph:
        body = {"recipient": {"id": PSID}, "message": {"text": "x"}}
        first = await graph.post("/me/messages?access_token=test_page_token", json=body)
        second = await graph.post("/me/messages?access_token=test_page_token", json=body)
    assert (first.status_code, first.json()["error"]["is_transient"]) == (500, True)
    assert second.status_code == 200
    assert await world.mock.faults() == []
    await world.mock.arm_fault(code=613, psid=PSID)
    assert await world.mock.clear_faults() == 1


async def test_bad_fault_and_chaos_specs_are_422(world: World) -> None:
    for call in (
        world.mock.arm_fault(probability=2),
        world.mock.arm_fault(subcode=5),
        world.mock.set_chaos(duplicate_probability=3),
        world.mock.set_chaos(colour="red"),
        world.mock.update_settings(retry_profile="no-such-profile"),
    ):
        with pytest.raises(Exception) as info:
            await call
        assert getattr(info.value, "status", None) == 422


async def test_clock_advance_closes_the_window_for_the_send_api(world: World) -> None:
    world.bot.silent = True
    await world.mock.user(PSID).send_text("hello")
    await world.mock.freeze_clock()
    before = (await world.mock.clock())["now"]
    after = await world.mock.advance_clock(25 * 3600)
    assert after["now"] == pytest.approx(before + 25 * 3600) and after["frozen"] is True
    async with httpx.AsyncClient(base_url=world.server.base_url) as graph:
        r = await graph.post(
            "/me/messages?access_token=test_page_token",
            json={"recipient": {"id": PSID}, "message": {"text": "late"}},
        )
    assert r.json()["error"]["error_subcode"] == 2018278


async def test_journal_filters_by_psid_and_mid(world: World) -> None:
    other = await world.mock.create_user(first_name="Ann")
    first = await world.mock.user(PSID).send_text("one")
    await other.send_text("two")
    await world.mock.wait_for_reply(PSID, first.action_id, timeout=10)
    assert {d["psid"] for d in await world.mock.journal("deliveries", psid=other.psid)} == {
        other.psid
    }
    by_mid = await world.mock.journal("deliveries", mid=first.action_id)
    assert [d["mid"] for d in by_mid] == [first.action_id]
    sends = await world.mock.journal("sends", psid=PSID)
    assert sends[0]["answers_mid"] == first.action_id
    summary = await world.mock.summary()
    assert summary["actions"] == 2


async def test_reset_returns_to_the_seed(world: World) -> None:
    world.bot.silent = True
    user = await world.mock.create_user()
    await world.mock.arm_fault(code=2)
    await world.mock.user(PSID).send_text("x")
    await world.mock.freeze_clock()
    await world.mock.reset()
    config = await world.mock.config()
    assert [u["psid"] for u in config["users"]] == [PSID] and user.psid != PSID
    assert await world.mock.faults() == []
    assert await world.mock.journal("deliveries") == []
    assert (await world.mock.clock())["frozen"] is False


async def test_handshake_reports_the_callbacks_verdict(world: World) -> None:
    ok = await world.mock.handshake()
    assert ok["ok"] is True and ok["status"] == 200
    bad = await world.mock.handshake(callback_url=f"{world.server.base_url}/nowhere")
    assert bad["ok"] is False and bad["reason"]


async def test_created_page_and_user_work_with_the_returned_token(world: World) -> None:
    page = await world.mock.create_page(name="Second")
    user = await world.mock.create_user(page_id=page["id"], open_window=True)
    async with httpx.AsyncClient(base_url=world.server.base_url) as graph:
        r = await graph.post(
            f"/{page['id']}/messages",
            params={"access_token": page["token"]},
            json={"recipient": {"id": user.psid}, "message": {"text": "hi"}},
        )
    assert r.status_code == 200 and r.json()["recipient_id"] == user.psid


async def test_wait_parameters_are_validated(world: World) -> None:
    for params in (
        {"psid": PSID, "mid": "m", "timeout": 0},
        {"psid": PSID, "mid": "m", "timeout": 61},
        {"psid": PSID},
    ):
        with pytest.raises(Exception) as info:
            await world.mock.request("GET", "/_mock/wait/reply", params=params)
        assert getattr(info.value, "status", None) == 422
