"""Send API faults armed in the mock and the 24-hour window, as the bot experiences them."""

from __future__ import annotations

import time
from typing import Any

from bot.default_handlers import you_said
from bot.routing import Context, Reply, Router
from mock_meta.clock import ControllableClock
from tests.contract.bot_mock_pair import PSID, BotMockPair, StartPair
from tests.polling import eventually


async def _sends(pair: BotMockPair, psid: str) -> list[tuple[int | None, str]]:
    """(Graph error code, text) of every Send API call to ``psid``, in order."""
    sends = await pair.mock.journal("sends", psid=psid)
    return [(s["error_code"], s["request"]["message"]["text"]) for s in sends]


async def _text_done(pair: BotMockPair, count: int = 1) -> None:
    """Wait until the bot finished ``count`` texts and settled their replies (sent, dropped or
    dead-lettered): every Send API call for them was made."""
    await pair.wait_metric(
        "bot_events_processed_total", count, event_type="text", outcome="handled"
    )
    await eventually(
        lambda: pair.metric_sum("bot_replies_settled_total") >= count, what="settled replies"
    )


async def test_a_transient_send_error_is_retried_and_the_user_gets_exactly_one_reply(
    pair: BotMockPair,
) -> None:
    await pair.mock.arm_fault(code=2, http_status=500, count=1)
    action = await pair.mock.user(PSID).send_text("flaky")
    reply = await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)
    await _text_done(pair)

    assert reply.message["text"] == "You said: flaky"
    assert await _sends(pair, PSID) == [(2, "You said: flaky"), (None, "You said: flaky")]
    assert pair.metric("bot_send_api_retries_total", error_code="2") == 1
    assert pair.metric("bot_send_api_requests_total", outcome="success", error_code="none") == 1
    summary = await pair.mock.summary()
    assert (summary["answered"], summary["extra_replies"]) == (1, 0)


async def test_throttling_613_is_retried_but_only_up_to_the_attempt_limit(
    pair: BotMockPair,
) -> None:
    user = pair.mock.user(PSID)
    await pair.mock.arm_fault(code=613, count=1)
    once = await user.send_text("busy?")
    await pair.mock.wait_for_reply(PSID, once.action_id, timeout=10)
    await _text_done(pair)
    assert await _sends(pair, PSID) == [(613, "You said: busy?"), (None, "You said: busy?")]
    assert pair.metric("bot_send_api_retries_total", error_code="613") == 1

    # Throttled for longer than the client's SEND_API_MAX_ATTEMPTS: the outbox keeps the reply
    # and sends it once Graph takes it again (nothing is dropped before the reply deadline).
    other = await pair.mock.create_user(open_window=True)
    attempts = pair.bot_settings.send_max_attempts
    await pair.mock.arm_fault(code=613, psid=other.psid, count=2 * attempts)
    asked = await other.send_text("still busy?")
    await pair.mock.wait_for_reply(other.psid, asked.action_id, timeout=10)
    await _text_done(pair, 2)

    sends = await _sends(pair, other.psid)
    assert sends == [(613, "You said: still busy?")] * 2 * attempts + [
        (None, "You said: still busy?")
    ]
    assert pair.metric("bot_replies_dropped_total", reason="retries_exhausted") == 0
    summary = await pair.mock.summary()
    assert summary["extra_replies"] == 0


async def test_an_invalid_token_190_is_not_retried_and_the_reply_is_dead_lettered(
    pair: BotMockPair,
) -> None:
    await pair.mock.arm_fault(code=190)
    await pair.mock.user(PSID).send_text("hello?")
    await _text_done(pair)

    assert await _sends(pair, PSID) == [(190, "You said: hello?")]
    assert pair.metric_sum("bot_send_api_retries_total") == 0
    assert pair.metric("bot_replies_undeliverable_total") == 1  # replayable once fixed
    assert pair.metric("bot_send_api_requests_total", outcome="permanent_error", error_code="190")


async def test_a_reply_to_a_message_older_than_24_hours_is_not_attempted(
    start_pair: StartPair,
) -> None:
    # The platform's clock runs 25 h behind the bot's: every event is a day old on arrival.
    pair = await start_pair(mock_clock=ControllableClock(start=time.time() - 25 * 3600))
    action = await pair.mock.user(PSID).send_text("sorry for the late answer")
    assert (await pair.mock.wait_for_delivery(action.action_id, timeout=10))["state"] == "delivered"
    await _text_done(pair)

    assert pair.metric("bot_replies_dropped_total", reason="outside_window") == 1
    assert await pair.mock.journal("sends") == []
    assert pair.graph.send_api_calls() == []


async def test_a_proactive_message_to_a_user_whose_window_is_closed_is_not_attempted(
    start_pair: StartPair,
) -> None:
    router = Router()
    router.on_text(you_said)

    @router.on_read
    def thank_for_reading(ctx: Context) -> Reply:
        return Reply.text("Thanks for reading!")

    pair = await start_pair(router=router)
    stranger = await pair.mock.create_user()  # never wrote to the page
    await stranger.read()
    await pair.wait_metric("bot_replies_dropped_total", 1, reason="outside_window")
    assert await pair.mock.journal("sends", psid=stranger.psid) == []

    # Once the user writes, the same handler's message goes out.
    said = await stranger.send_text("hi")
    await pair.mock.wait_for_reply(stranger.psid, said.action_id, timeout=10)
    await stranger.read()
    await pair.wait_metric("bot_replies_settled_total", 2, state="sent")
    texts: list[Any] = [text for _, text in await _sends(pair, stranger.psid)]
    assert texts == ["You said: hi", "Thanks for reading!"]
    assert pair.metric("bot_replies_dropped_total", reason="outside_window") == 1
