"""The reply outbox against the mock platform: outages, lost answers settled by echoes."""

from __future__ import annotations

from bot.outbox_codec import handler_metadata, key_from_metadata
from bot.routing import Reply, Router
from tests.contract.bot_mock_pair import PSID, BotMockPair, StartPair
from tests.polling import eventually


async def test_a_send_whose_answer_was_lost_is_settled_by_its_echo_not_sent_again(
    pair: BotMockPair,
) -> None:
    # Graph delivers the message but answers 1/1357046 "invalid JSON reply" (reference §6).
    await pair.mock.arm_fault(code=1, subcode=1357046, http_status=500, sent=True, count=1)
    action = await pair.mock.user(PSID).send_text("did you get it?")
    reply = await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)
    assert key_from_metadata(reply.message["metadata"]) is not None
    await pair.wait_metric("bot_reply_settlements_total", 1, outcome="echo")

    sends = await pair.mock.journal("sends", psid=PSID)
    assert len(sends) == 1  # never blindly retried
    assert pair.metric("bot_replies_settled_total", state="sent") == 1
    summary = await pair.mock.summary()
    assert (summary["answered"], summary["extra_replies"]) == (1, 0)


async def test_a_send_api_outage_loses_no_reply_and_sends_none_twice(
    start_pair: StartPair,
) -> None:
    pair = await start_pair(SEND_API_MAX_ATTEMPTS=2)
    await pair.mock.arm_fault(code=2, http_status=500)  # until cleared
    users = [await pair.mock.create_user(open_window=True) for _ in range(5)]
    for user in users:
        await user.send_text("anyone there?")

    async def failing_beyond_the_client_retries() -> bool:
        summary = await pair.mock.summary()
        return bool(summary["sends_by_error_code"].get("2", 0) >= 3 * len(users))

    await eventually(failing_beyond_the_client_retries, what="the outbox to keep retrying")
    assert pair.metric("bot_replies_undeliverable_total") == 0
    await pair.mock.clear_faults()

    async def all_answered() -> bool:
        return bool((await pair.mock.summary())["answered"] == len(users))

    await eventually(all_answered, what="every user answered once Graph is back")
    await eventually(
        lambda: pair.metric("bot_replies_settled_total", state="sent") == len(users),
        what="the outbox settled",
    )
    assert (await pair.mock.summary())["extra_replies"] == 0


async def test_a_handlers_own_metadata_reaches_the_platform_beside_the_key(
    start_pair: StartPair,
) -> None:
    router = Router()
    router.on_text(lambda ctx: Reply({"text": "noted", "metadata": "order-7"}))
    pair = await start_pair(router=router)
    action = await pair.mock.user(PSID).send_text("order please")
    reply = await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)

    metadata = reply.message["metadata"]
    assert metadata.startswith("mhb1:") and handler_metadata(metadata) == "order-7"
    # Meta echoes it unchanged; the echo settles nothing new and is counted once.
    await pair.wait_metric("bot_echoes_ignored_total", 1)
    echoes = [
        item["message"]
        for body in pair.switch.arrivals
        for entry in body.get("entry", [])
        for item in entry.get("messaging", [])
        if item.get("message", {}).get("is_echo")
    ]
    assert [echo.get("metadata") for echo in echoes] == [metadata]
    assert pair.metric("bot_replies_settled_total", state="sent") == 1
    assert len(await pair.mock.journal("sends", psid=PSID)) == 1
