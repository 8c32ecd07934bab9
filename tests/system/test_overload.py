"""Admission control on a real process: a flood past the backlog bound gets fast 503s with
``Retry-After``, while every acked event still gets its reply and none is lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.hostile.raw_http import metric_value
from tests.system.conftest import BotProcess, SendApiRecorder, signed_envelope, text_event

pytestmark = pytest.mark.system

StartBot = Callable[..., BotProcess]
FLOOD = 120
CLIENTS = 8
# Each event is held this long before it runs (the ordering window): the backlog is certain to
# stay above the floor while the flood is sent, whatever the machine's load.
HOLD_MS = 4000
FLOOR = 20


def _flood(url: str, psids: list[str]) -> dict[str, httpx.Response]:
    """One POST per PSID from ``CLIENTS`` keep-alive clients; the answer each got."""
    answers: dict[str, httpx.Response] = {}

    async def run() -> None:
        queue = list(psids)

        async def sender(client: httpx.AsyncClient) -> None:
            while queue:
                psid = queue.pop()
                body, headers = signed_envelope([text_event(f"m_flood_{psid}", psid=psid)])
                answers[psid] = await client.post(f"{url}/webhook", content=body, headers=headers)

        async with httpx.AsyncClient(timeout=10.0) as client:
            await asyncio.gather(*(sender(client) for _ in range(CLIENTS)))

    asyncio.run(run())
    return answers


def test_a_flood_past_the_backlog_bound_is_refused_and_every_acked_event_is_answered(
    start_bot: StartBot, send_api_recorder: SendApiRecorder
) -> None:
    bot = start_bot(
        ORDERING_WINDOW_MS=str(HOLD_MS),
        WEBHOOK_BACKLOG_FLOOR_EVENTS=str(FLOOR),
        WEBHOOK_BACKLOG_LIMIT_SECONDS="1",
    )
    psids = [f"81{n:014d}" for n in range(FLOOD)]
    answers = _flood(bot.url, psids)

    acked = [p for p, r in answers.items() if r.status_code == 200]
    refused = [r for r in answers.values() if r.status_code == 503]
    # The floor (a cold bot has no finishing rate yet), give or take the POSTs already past
    # the gate and not yet stored when the backlog reached it: at most one per client.
    assert FLOOR <= len(acked) < FLOOR + CLIENTS
    assert len(refused) == FLOOD - len(acked)
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert refused[0].json() == {"error": "overloaded, retry later"}
    assert metric_value(bot, "bot_webhook_refused_total", reason="overloaded") == len(refused)

    # Nothing acked is lost: each acked event gets its one reply once its hold has passed...
    assert send_api_recorder.wait_for(
        lambda r: all(r.replies_to(p) for p in acked), timeout=HOLD_MS / 1000 + 30
    ), "an acked event got no reply"
    # ...and a refused one none (Meta delivers it again; the bot never stored it).
    replied = {r.recipient for r in send_api_recorder.answered()}
    assert replied == set(acked)
    assert all(len(send_api_recorder.replies_to(p)) == 1 for p in acked)

    # The backlog drained: the edge takes events again.
    again = bot.post_events([text_event("m_after_flood", psid="8299999999999999")])
    assert again.status_code == 200, again.text
    assert metric_value(bot, "bot_webhook_backlog_events") < FLOOR


def test_probes_and_the_handshake_are_never_refused(
    start_bot: StartBot, send_api_recorder: SendApiRecorder
) -> None:
    bot = start_bot(
        ORDERING_WINDOW_MS=str(HOLD_MS),
        WEBHOOK_BACKLOG_FLOOR_EVENTS="1",
        WEBHOOK_BACKLOG_LIMIT_SECONDS="1",
    )
    assert bot.post_events([text_event("m_first", psid="8300000000000001")]).status_code == 200
    assert bot.post_events([text_event("m_second", psid="8300000000000002")]).status_code == 503
    params: dict[str, Any] = {
        "hub.mode": "subscribe",
        "hub.verify_token": "test_verify_token",
        "hub.challenge": "42",
    }
    handshake = httpx.get(f"{bot.url}/webhook", params=params, timeout=10)
    assert (handshake.status_code, handshake.text) == (200, "42")
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{bot.url}{path}", timeout=10).status_code == 200, path
    assert json.loads(httpx.get(f"{bot.url}/healthz", timeout=10).text) == {"status": "ok"}
