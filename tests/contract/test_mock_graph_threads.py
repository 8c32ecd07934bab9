"""Conversation Routing on the mock (reference §3.14, §9.7): two apps on one Page hand a
thread back and forth; the owner gets ``messaging[]``, the other ``standby[]``."""

from __future__ import annotations

from typing import Any

import pytest

from mock_meta.builders import PAGE_INBOX_APP_ID
from mock_meta.state import MESSAGING_FIELDS
from tests.contract.graph_mock import APP, PAGE, PSID, TOKEN, Mock, mock, text_body

__all__ = ["mock"]  # the fixture, imported for pytest

AGENT_APP = "2222222222222222"
AGENT_TOKEN = "agent_page_token"
DAY = 24 * 3600


class _AnyInt:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)


ANY_INT = _AnyInt()


@pytest.fixture
def agent(mock: Mock) -> str:
    """A second app (a human-agent tool) connected to the same Page."""
    state = mock.runtime.state
    state.create_app(
        app_id=AGENT_APP, secret="agent_secret", verify_token="v", callback_url="http://agent/"
    )
    state.add_token(PAGE, AGENT_TOKEN, AGENT_APP)
    state.subscribe_page(PAGE, AGENT_APP, MESSAGING_FIELDS)
    return AGENT_APP


async def call(mock: Mock, edge: str, token: str = TOKEN, **fields: Any) -> dict[str, Any]:
    body = {"recipient": {"id": PSID}, **fields}
    r = await mock.client.post(f"/v25.0/me/{edge}?access_token={token}", json=body)
    result: dict[str, Any] = r.json()
    return result


async def owner(mock: Mock) -> list[dict[str, Any]]:
    r = await mock.client.get(f"/v25.0/me/thread_owner?recipient={PSID}&access_token={TOKEN}")
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def delivered(mock: Mock, mid: str) -> list[dict[str, Any]]:
    """Every entry that carried ``mid``, once each app's delivery settled."""
    await mock.runtime.journal.wait_delivery(mid, 5)
    for record in mock.runtime.journal.deliveries(mid=mid):
        assert await mock.runtime.journal.wait_delivery(record.mid or "", 5) is not None
    return [
        entry
        for post in mock.webhooks.posts
        for entry in post["entry"]  # type: ignore[attr-defined]
        for event in entry.get("messaging", []) + entry.get("standby", [])
        if event.get("message", {}).get("mid") == mid
    ]


async def test_pass_makes_the_target_the_owner_and_notifies_it(mock: Mock, agent: str) -> None:
    assert await owner(mock) == []
    assert await call(mock, "pass_thread_control", target_app_id=agent, metadata="to agent") == {
        "success": True
    }
    assert await owner(mock) == [{"thread_owner": {"app_id": agent, "expiration": ANY_INT}}]
    records = mock.runtime.journal.deliveries(app_id=agent)
    assert [r.event_type for r in records] == ["pass_thread_control"]
    # The bot no longer owns the thread: its sends fail until it takes control back.
    r = await mock.client.post(f"/me/messages?access_token={TOKEN}", json=text_body())
    assert r.status_code == 400 and r.json()["error"]["code"] == 2018300
    assert await call(mock, "take_thread_control", metadata="bot resumes") == {"success": True}
    assert await owner(mock) == [{"thread_owner": {"app_id": APP, "expiration": ANY_INT}}]
    taken = mock.runtime.journal.deliveries(app_id=agent)
    assert [r.event_type for r in taken][-1] == "take_thread_control"
    assert (
        await mock.client.post(f"/me/messages?access_token={TOKEN}", json=text_body())
    ).is_success


async def test_non_owners_get_user_messages_on_standby(mock: Mock, agent: str) -> None:
    await call(mock, "pass_thread_control", target_app_id=agent)
    async with mock.control() as control:
        action = await control.user(PSID).send_text("need a human")
    entries = await delivered(mock, action.mid or "")
    by_key = sorted("standby" if "standby" in e else "messaging" for e in entries)
    assert by_key == ["messaging", "standby"]
    records = {r.app_id: r.standby for r in mock.runtime.journal.deliveries(mid=action.mid)}
    assert records == {agent: False, APP: True}


async def test_only_the_owner_may_pass_release_or_extend(mock: Mock, agent: str) -> None:
    await call(mock, "pass_thread_control", token=AGENT_TOKEN, target_app_id=agent)
    for edge, fields in [
        ("pass_thread_control", {"target_app_id": APP}),
        ("release_thread_control", {}),
        ("extend_thread_control", {"duration": 60}),
    ]:
        assert (await call(mock, edge, **fields))["error"]["code"] == 2018300, edge
    # Asking for it notifies the owner instead.
    assert await call(mock, "request_thread_control", metadata="please") == {"success": True}
    requests = mock.runtime.journal.deliveries(app_id=agent)
    assert [r.event_type for r in requests][-1] == "request_thread_control"
    assert await call(mock, "release_thread_control", token=AGENT_TOKEN) == {"success": True}
    assert await owner(mock) == []


async def test_pass_to_an_unknown_app_is_2018164_but_the_page_inbox_is_fine(
    mock: Mock, agent: str
) -> None:
    refused = await call(mock, "pass_thread_control", target_app_id="999")
    assert (refused["error"]["code"], refused["error"]["error_subcode"]) == (100, 2018164)
    ok = await call(mock, "pass_thread_control", target_app_id=str(PAGE_INBOX_APP_ID))
    assert ok == {"success": True}


async def test_control_lapses_after_24_hours_without_activity(mock: Mock, agent: str) -> None:
    await call(mock, "pass_thread_control", target_app_id=agent)
    mock.clock.advance(23 * 3600)
    async with mock.control() as control:
        await control.user(PSID).send_text("still there?")  # activity restarts the clock
    mock.clock.advance(23 * 3600)
    assert await owner(mock) == [{"thread_owner": {"app_id": agent, "expiration": ANY_INT}}]
    mock.clock.advance(3600)
    assert await owner(mock) == []


async def test_an_extension_keeps_control_up_to_7_days(mock: Mock, agent: str) -> None:
    await call(mock, "take_thread_control")
    assert await call(mock, "extend_thread_control", duration=3 * DAY) == {"success": True}
    [held] = await owner(mock)
    assert held["thread_owner"]["expiration"] == int(mock.clock.now() + 3 * DAY)
    mock.clock.advance(3 * DAY - 1)
    assert await owner(mock) != []
    mock.clock.advance(2)
    assert await owner(mock) == []
    refused = await call(mock, "extend_thread_control", duration=8 * DAY)
    assert refused["error"]["code"] == 2018300  # no longer the owner
    await call(mock, "take_thread_control")
    too_long = await call(mock, "extend_thread_control", duration=8 * DAY)
    assert too_long["error"]["code"] == 100


async def test_a_send_can_pass_or_release_the_thread(mock: Mock, agent: str) -> None:
    handoff = {**text_body("an agent will take over"), "thread_control": {"control_type": "pass"}}
    handoff["thread_control"]["app_id"] = agent  # type: ignore[index]
    r = await mock.client.post(f"/me/messages?access_token={TOKEN}", json=handoff)
    assert r.status_code == 200, r.text
    assert (await owner(mock))[0]["thread_owner"]["app_id"] == agent
    bad = {**text_body(), "thread_control": {"control_type": "steal"}}
    r = await mock.client.post(f"/me/messages?access_token={AGENT_TOKEN}", json=bad)
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    release = {**text_body("bye"), "thread_control": {"control_type": "release"}}
    r = await mock.client.post(f"/me/messages?access_token={AGENT_TOKEN}", json=release)
    assert r.status_code == 200, r.text
    assert await owner(mock) == []


async def test_secondary_receivers_lists_the_other_apps(mock: Mock, agent: str) -> None:
    r = await mock.client.get(f"/v25.0/me/secondary_receivers?access_token={TOKEN}")
    assert [app["id"] for app in r.json()["data"]] == [agent]


async def test_a_simulated_inbox_take_moves_the_thread_away_from_the_bot(mock: Mock) -> None:
    async with mock.control() as control:
        await control.user(PSID).act("handover", mode="take")
    assert (await owner(mock))[0]["thread_owner"]["app_id"] == str(PAGE_INBOX_APP_ID)
    r = await mock.client.post(f"/me/messages?access_token={TOKEN}", json=text_body())
    assert r.json()["error"]["code"] == 2018300
