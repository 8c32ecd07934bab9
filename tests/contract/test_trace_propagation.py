"""With MOCK_META_PROPAGATE_TRACEPARENT one trace runs delivery -> bot -> Send API -> mock."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from tests.contract.bot_mock_pair import PSID, BotMockPair, StartPair


def _trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent else None


async def _delivery_and_reply_traces(pair: BotMockPair) -> tuple[str | None, str | None]:
    action = await pair.mock.user(PSID).send_text("follow me")
    await pair.mock.wait_for_reply(PSID, action.action_id, timeout=10)
    (delivery,) = await pair.mock.journal("deliveries", psid=PSID, mid=action.mid)
    (reply,) = [s for s in await pair.mock.journal("sends", psid=PSID) if s["message_id"]]
    return _trace_id(delivery["traceparent"]), _trace_id(
        reply["call"]["headers"].get("traceparent")
    )


async def test_one_trace_runs_from_the_delivery_through_the_bot_back_to_the_mock(
    start_pair: StartPair,
) -> None:
    pair = await start_pair(mock={"propagate_traceparent": True})
    delivered, replied = await _delivery_and_reply_traces(pair)

    assert delivered is not None and replied == delivered
    servers = [s for s in pair.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert delivered in {format(s.context.trace_id, "032x") for s in servers if s.context}


async def test_deliveries_carry_no_trace_context_by_default(pair: BotMockPair) -> None:
    delivered, replied = await _delivery_and_reply_traces(pair)

    assert delivered is None
    assert replied is not None  # the bot's own trace, started at its webhook
