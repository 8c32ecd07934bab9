"""Failures the ack and reply histograms cannot see: a blocked event loop, a Send API outage."""

from __future__ import annotations

import time

from bot.routing import Context, Reply, Router
from tests.contract.bot_mock_pair import PSID, StartPair

STALL_SECONDS = 0.6


async def test_a_handler_that_blocks_the_loop_shows_as_event_loop_lag(
    start_pair: StartPair,
) -> None:
    router = Router()

    @router.on_text
    async def blocking(ctx: Context) -> Reply:
        time.sleep(STALL_SECONDS)  # noqa: ASYNC251 - the bug under test: blocking the loop
        return Reply.text("done")

    pair = await start_pair(router=router)
    action = await pair.mock.user(PSID).send_text("block the loop")
    await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)

    def stalled_ticks() -> float:
        count = pair.metric("bot_event_loop_lag_seconds_count")
        return count - pair.metric("bot_event_loop_lag_seconds_bucket", le="0.5")

    await pair.wait_metric("bot_event_loop_lag_seconds_count", 1)
    assert stalled_ticks() >= 1, "a 0.6 s stall was not observed as lag above 0.5 s"
    assert pair.metric("bot_event_loop_lag_seconds_sum") >= STALL_SECONDS - 0.1 - 0.05


async def test_a_total_send_api_outage_counts_unanswered_events_as_missing_the_slo(
    start_pair: StartPair,
) -> None:
    # A long retry budget keeps the replies owed (not dropped) while the SLO passes.
    pair = await start_pair(
        REPLY_SLO_SECONDS=1.0, SEND_API_MAX_ATTEMPTS=50, SEND_API_BACKOFF_MAX_SECONDS=0.2
    )
    await pair.mock.arm_fault(code=2, http_status=500)
    users = [await pair.mock.create_user(open_window=True) for _ in range(3)]
    for user in users:
        await user.send_text("anyone there?")

    await pair.wait_metric("bot_reply_slo_events_total", 3, result="missed")
    # The latency histogram never saw them: that is the blind spot the counter closes.
    assert pair.metric("bot_time_to_first_reply_seconds_count") == 0
    assert pair.metric("bot_reply_slo_events_total", result="met") == 0

    await pair.mock.clear_faults()
    await pair.wait_metric("bot_time_to_first_reply_seconds_count", 3, within=20)
    action = await pair.mock.user(PSID).send_text("and now?")
    await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)
    await pair.wait_metric("bot_reply_slo_events_total", 1, result="met")
    # The late replies to the first three counted nothing more.
    assert pair.metric("bot_reply_slo_events_total", result="missed") == 3
