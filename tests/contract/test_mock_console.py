"""The web console's HTTP surface against the real bot: the page, its live snapshot stream,
the exact bytes it shows, and its redeliver / raw POST / re-subscribe operations."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from mock_meta.wire import sign_sha256
from tests.contract.bot_mock_pair import APP_SECRET, PAGE_ID, PAGE_TOKEN, PSID, BotMockPair
from tests.polling import eventually

SNAPSHOT = "/_mock/console/snapshot"


async def snapshot(pair: BotMockPair, **params: str) -> dict[str, Any]:
    data: dict[str, Any] = await pair.mock.request("GET", SNAPSHOT, params=params)
    return data


async def test_the_console_page_and_its_files_are_served_at_the_root(pair: BotMockPair) -> None:
    async with httpx.AsyncClient(base_url=pair.mock_url, trust_env=False) as http:
        page = await http.get("/")
        script = await http.get("/_mock/console/static/console.js")
        style = await http.get("/_mock/console/static/console.css")
        batch = await http.post("/", data={"access_token": PAGE_TOKEN})

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>mock_meta console</title>" in page.text
    assert "/_mock/console/static/console.js" in page.text
    assert script.status_code == 200 and "EventSource" in script.text
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    # POST / is still Graph's batch endpoint, answering in Graph's error envelope.
    assert batch.status_code == 400 and "error" in batch.json()


async def test_snapshot_shows_the_conversation_with_the_reply_attributed(
    pair: BotMockPair,
) -> None:
    action = await pair.mock.user(PSID).send_text("hi 👍")
    await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)

    view = await snapshot(pair, psid=PSID)

    user, bot = view["conversation"][0], view["conversation"][-1]
    assert (user["side"], user["type"], user["text"]) == ("user", "text", "hi 👍")
    # The message as the bot sent it (its idempotency key rides in metadata).
    assert (bot["side"], bot["message"]["text"], bot["answers_mid"]) == (
        "bot",
        "You said: hi 👍",
        action.mid,
    )
    assert bot["request"]["access_token"] == "[redacted]"


async def test_each_attempt_shows_the_exact_signed_bytes(pair: BotMockPair) -> None:
    action = await pair.mock.user(PSID).send_text("bytes / and é")
    await pair.mock.wait_for_delivery(action.action_id, timeout=10)

    view = await snapshot(pair)

    delivery = next(d for d in view["deliveries"] if d["mid"] == action.mid)
    attempt = delivery["attempts"][0]
    body = attempt["body"].encode()
    assert attempt["headers"]["X-Hub-Signature-256"] == sign_sha256(body, APP_SECRET)
    assert b"bytes \\/ and \\u00e9" in body  # Meta's escaping, as sent
    assert json.loads(body)["entry"][0]["messaging"][0]["message"]["mid"] == action.mid


async def test_redeliver_queues_the_same_event_again(pair: BotMockPair) -> None:
    action = await pair.mock.user(PSID).send_text("again")
    await pair.mock.wait_for_delivery(action.action_id, timeout=10)
    assert action.delivery_id is not None

    answer = await pair.mock.request(
        "POST", f"/_mock/console/deliveries/{action.delivery_id}/redeliver", expect=(202,)
    )

    async def redelivered() -> bool:
        deliveries = await pair.mock.journal("deliveries", mid=action.mid)
        return any(
            d["delivery_id"] == answer["delivery_id"] and d["state"] == "delivered"
            for d in deliveries
        )

    await eventually(redelivered, what="the redelivery reached the bot")
    assert pair.switch.arrived_mids(PSID).count(action.mid) == 2
    with pytest.raises(Exception, match="404"):
        await pair.mock.request("POST", "/_mock/console/deliveries/dlv_999999/redeliver")


@pytest.mark.parametrize(("signature", "accepted"), [("valid", True), ("wrong", False)])
async def test_a_raw_event_is_posted_signed_as_asked(
    pair: BotMockPair, signature: str, accepted: bool
) -> None:
    body = json.dumps({"object": "page", "entry": []})

    result = await pair.mock.request(
        "POST", "/_mock/console/raw", json={"body": body, "signature": signature}
    )

    assert result["ok"] is accepted
    assert (result["status"] == 200) is accepted
    assert result["headers"]["X-Hub-Signature-256"].startswith("sha256=")


async def test_a_raw_event_needs_a_body(pair: BotMockPair) -> None:
    with pytest.raises(Exception, match="422"):
        await pair.mock.request("POST", "/_mock/console/raw", json={"body": ""})


async def test_failing_page_shows_alert_then_unsubscribe_then_resubscribes(
    pair: BotMockPair,
) -> None:
    await pair.mock.freeze_clock()
    pair.switch.failing = True
    await pair.mock.user(PSID).send_text("nobody home")

    async def failing() -> dict[str, Any] | None:
        view = await snapshot(pair)
        sub = view["config"]["pages"][0]["subscribed_apps"][0]
        return sub["failure"] if any(d["state"] == "retrying" for d in view["deliveries"]) else None

    failure = await eventually(failing, what="a retrying delivery on a failing page")
    assert failure["alert_at"] - failure["failing_since"] == 15 * 60
    retrying = next(d for d in (await snapshot(pair))["deliveries"] if d["state"] == "retrying")
    assert retrying["next_retry_at"] > retrying["attempts"][-1]["at"]

    await pair.mock.advance_clock(15 * 60)
    alerts = await eventually(lambda: pair.mock.journal("alerts"), what="the 15-minute alert")
    assert alerts[0]["kind"] == "failing_15m"

    await pair.mock.advance_clock(45 * 60)

    async def unsubscribed() -> bool:
        sub = (await snapshot(pair))["config"]["pages"][0]["subscribed_apps"][0]
        return not sub["active"]

    await eventually(unsubscribed, what="the one-hour unsubscribe")

    pair.switch.failing = False
    answer = await pair.mock.request("POST", "/_mock/console/resubscribe", json={})
    view = await snapshot(pair)
    assert answer["page_id"] == PAGE_ID
    assert view["config"]["pages"][0]["subscribed_apps"][0]["active"] is True
    assert view["subscriptions"][0]["change"] == "subscribed"


async def test_the_stream_sends_a_new_snapshot_when_the_bot_answers(pair: BotMockPair) -> None:
    async with (
        httpx.AsyncClient(base_url=pair.mock_url, trust_env=False, timeout=10) as http,
        http.stream("GET", "/_mock/console/stream", params={"psid": PSID}) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        first = await _next_event(lines)
        assert first["conversation"] == []
        await pair.mock.user(PSID).send_text("live?")
        while True:  # bounded by the client timeout: each read waits at most 10 s
            view = await _next_event(lines)
            texts = [(i.get("message") or {}).get("text") for i in view["conversation"]]
            if "You said: live?" in texts:
                break


async def _next_event(lines: Any) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            data: dict[str, Any] = json.loads(line[len("data: ") :])
            return data
    raise AssertionError("the stream ended")
