"""How the bot copes with the platform's delivery behaviour: duplicates and reordering, webhook
retries after 500s, and the developer alert and unsubscribe when the bot stays down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from mock_meta.chaos import Chaos, ChaosConfig
from mock_meta.state import MESSAGING_FIELDS
from tests.contract.bot_mock_pair import (
    PAGE_ID,
    PAGE_TOKEN,
    PSID,
    BotMockPair,
    StartPair,
    eventually,
)

CHAOS_SEED = 20260512
MESSAGES = 6


async def _replies(pair: BotMockPair, psid: str) -> list[str]:
    sends = await pair.mock.journal("sends", psid=psid)
    return [s["request"]["message"]["text"] for s in sends if s["status"] == 200]


def _count_at_least(pair: BotMockPair, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await _replies(pair, PSID)) >= count

    return check


def _all_processed(pair: BotMockPair) -> bool:
    received = pair.metric_sum("bot_webhook_events_received_total")
    processed = pair.metric_sum("bot_events_processed_total")
    failed = pair.metric_sum("bot_events_processed_total", outcome="failed")
    return received == processed - failed


async def test_duplicated_and_reordered_deliveries_get_one_reply_each_in_the_users_order(
    start_pair: StartPair,
) -> None:
    # The ordering window must cover the gap between two swapped deliveries of one user. The
    # receipts of the replies are switched off: they would join the user's delivery queue, and
    # the mock's reorder can keep pushing one message behind them (see the report).
    pair = await start_pair(
        ORDERING_WINDOW_MS=500, mock={"emit_echoes": False, "emit_deliveries": False}
    )
    chaos = await pair.mock.set_chaos(
        seed=CHAOS_SEED, duplicate_probability=0.5, reorder_probability=0.5
    )
    await pair.mock.freeze_clock()  # distinct, increasing timestamps: one second apart
    pair.switch.hold()  # the first webhook waits, so the others queue up behind it
    user = pair.mock.user(PSID)
    sent = []
    for n in range(MESSAGES):
        sent.append(await user.send_text(f"message {n}"))
        await pair.mock.advance_clock(1)
    pair.switch.release()

    await eventually(_count_at_least(pair, MESSAGES), within=15, what=f"{MESSAGES} replies")
    # Settle: every POST the mock made (duplicates included) reached the bot and was done.
    decide = Chaos(ChaosConfig(seed=chaos["seed"], duplicate_probability=0.5))

    async def settled() -> bool:
        deliveries = await pair.mock.journal("deliveries")
        if not all(d["state"] in ("delivered", "skipped") for d in deliveries):
            return False
        posts = sum(
            sum(1 for a in d["attempts"] if not a["duplicate"])
            + (d["state"] == "delivered" and decide.should_duplicate(d["delivery_id"]))
            for d in deliveries
        )
        return posts == len(pair.switch.arrivals) and _all_processed(pair)

    await eventually(settled, within=15, what="all deliveries settled")

    assert await _replies(pair, PSID) == [f"You said: message {n}" for n in range(MESSAGES)]
    arrived = pair.switch.arrived_mids(PSID)
    in_order = [a.action_id for a in sent]  # a text's action id is its mid
    first_arrivals = list(dict.fromkeys(arrived))
    assert sorted(first_arrivals) == sorted(in_order)
    assert first_arrivals != in_order, "the seed should make the mock reorder deliveries"
    assert len(arrived) > len(in_order), "the seed should make the mock duplicate deliveries"
    assert pair.metric_sum("bot_events_duplicate_total") > 0
    assert pair.metric("bot_webhook_events_received_total", event_type="text") == MESSAGES
    summary = await pair.mock.summary()
    assert summary["extra_replies"] == 0


async def test_a_bot_answering_500_is_retried_and_answers_once_it_recovers(
    pair: BotMockPair,
) -> None:
    pair.switch.failing = True
    await pair.mock.freeze_clock()  # the spaced retry waits for our clock advance
    user = pair.mock.user(PSID)
    first = await user.send_text("are you there?")
    second = await user.send_text("hello?")

    async def both_waiting_for_retry() -> bool:
        deliveries = await pair.mock.journal("deliveries", psid=PSID)
        return len(deliveries) == 2 and all(d["state"] == "retrying" for d in deliveries)

    await eventually(both_waiting_for_retry, what="the mock scheduling retries")
    # The first attempt and the profile's immediate retries all got a 500.
    profile = (await pair.mock.request("GET", "/_mock/settings"))["retry_profile"]
    failed_attempts = 1 + profile["immediate_retries"]
    assert pair.switch.refused == 2 * failed_attempts
    assert pair.metric("bot_webhook_events_received_total", event_type="text") == 0

    pair.switch.failing = False
    await pair.mock.advance_clock(1)
    await eventually(_count_at_least(pair, 2), what="both replies")

    assert sorted(await _replies(pair, PSID)) == ["You said: are you there?", "You said: hello?"]
    for action in (first, second):
        (delivery,) = await pair.mock.journal("deliveries", mid=action.action_id)
        outcomes = [(a["outcome"], a["status"]) for a in delivery["attempts"]]
        assert outcomes == [("http_error", 500)] * failed_attempts + [("success", 200)]
    assert pair.metric("bot_webhook_events_received_total", event_type="text") == 2


async def test_a_bot_that_stays_down_is_alerted_then_unsubscribed_and_resubscribing_restores_it(
    pair: BotMockPair,
) -> None:
    pair.switch.failing = True
    await pair.mock.freeze_clock()
    user = pair.mock.user(PSID)
    lost = await user.send_text("anyone home?")

    async def retrying() -> bool:
        (delivery,) = await pair.mock.journal("deliveries", mid=lost.action_id)
        return bool(delivery["state"] == "retrying")

    await eventually(retrying, what="the first spaced retry to be scheduled")

    await pair.mock.advance_clock(15 * 60)
    alerts = await eventually(
        lambda: pair.mock.journal("alerts", page_id=PAGE_ID), what="the 15-minute alert"
    )
    assert [a["kind"] for a in alerts] == ["failing_15m"]

    await pair.mock.advance_clock(45 * 60)

    async def disabled() -> list[dict[str, Any]]:
        kinds = [a["kind"] for a in await pair.mock.journal("alerts", page_id=PAGE_ID)]
        return kinds if "webhooks_disabled" in kinds else []

    assert await eventually(disabled, what="the unsubscribe") == [
        "failing_15m",
        "webhooks_disabled",
    ]
    changes = [s["change"] for s in await pair.mock.journal("subscriptions", page_id=PAGE_ID)]
    assert changes == ["disabled"]
    (dropped,) = await pair.mock.journal("deliveries", mid=lost.action_id)
    assert (dropped["state"], dropped["reason"]) == ("dropped", "unsubscribed")

    # The bot is back, but the platform no longer delivers to it.
    pair.switch.failing = False
    refused = pair.switch.refused
    ignored = await user.send_text("still there?")
    skipped = await pair.mock.wait_for_delivery(ignored.action_id, timeout=5)
    assert skipped["state"] == "skipped"
    assert pair.switch.refused == refused and pair.switch.arrivals == []
    assert pair.metric("bot_webhook_events_received_total", event_type="text") == 0

    async with httpx.AsyncClient(base_url=pair.mock_url) as graph:
        resubscribed = await graph.post(
            f"/v25.0/{PAGE_ID}/subscribed_apps",
            data={"subscribed_fields": ",".join(MESSAGING_FIELDS), "access_token": PAGE_TOKEN},
        )
    assert resubscribed.json() == {"success": True}
    back = await user.send_text("back again")
    reply = await pair.mock.wait_for_reply(PSID, back.action_id, timeout=10)
    assert reply.message["text"] == "You said: back again"
    assert await _replies(pair, PSID) == ["You said: back again"]
