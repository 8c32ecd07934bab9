"""A bot on ``INBOX_BACKEND=redis`` in-process: answers via its shard feed, 503 without Redis,
and takes up where it was once Redis is back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bot.testing import PSID
from tests.contract.test_bot_webhook import (  # the edge's own harness, not a copy
    BotFactory,
    envelope,
    make_bot,
    text_event,
)
from tests.polling import eventually
from tests.redis_server import RedisServer

__all__ = ["make_bot"]  # a fixture this module uses

FAST_LEASES = {"REDIS_LEASE_SECONDS": 1.0, "REDIS_CLAIM_INTERVAL_SECONDS": 0.2}


async def test_a_redis_backed_bot_answers_503_while_redis_is_gone_and_recovers(
    make_bot: BotFactory, start_redis: Callable[[], RedisServer], redis_prefix: str
) -> None:
    server = start_redis()
    env: dict[str, Any] = {
        "INBOX_BACKEND": "redis",
        "REDIS_URL": server.url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "REDIS_SHARDS": 4,
        "REDIS_TIMEOUT_SECONDS": 0.5,
        **FAST_LEASES,
    }
    async with make_bot(**env) as bot:
        await eventually(
            lambda: bot.metric("bot_shards_owned") == 4, within=10, what="all shards owned"
        )
        body = envelope(text_event("m_1", "hello", timestamp=int(time.time() * 1000)))
        assert (await bot.post(body)).status_code == 200
        await bot.send_api.wait_for(1, within=10.0)
        assert [call.psid for call in bot.send_api.sent] == [PSID]

        server.kill()
        refused = await bot.post(envelope(text_event("m_2", "still there?")))
        assert (refused.status_code, refused.json()) == (503, {"error": "inbox unavailable"})
        assert (await bot.client.get("/readyz")).status_code == 503
        assert bot.metric("bot_webhook_events_received_total", event_type="text") == 1

        assert server.restart()  # same data: the AOF is replayed
        later = envelope(text_event("m_3", "back", timestamp=int(time.time() * 1000)))
        await eventually(
            lambda: _status(bot.post(later), 200), within=10, what="stored again once Redis is back"
        )
        await bot.send_api.wait_for(2, within=10.0)  # its reply
        assert (await bot.post(body)).status_code == 200  # Meta redelivers the first one...
        assert bot.metric("bot_events_duplicate_total", event_type="text") == 1  # ...stored once
        assert len(bot.send_api.sent) == 2


async def _status(response: Awaitable[httpx.Response], expected: int) -> bool:
    return (await response).status_code == expected
