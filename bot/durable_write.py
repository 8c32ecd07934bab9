"""Retry an inbox write until it lands: the engine never reads a failed write as "not done".

>>> committed = await until_stored(lambda: inbox.commit_handled(event_id, replies),
...                                what="commit", metrics=metrics, stopping=lambda: False)
...                                # doctest: +SKIP

A full disk or a lock held for seconds delays the engine instead of losing a state: the write
is retried with capped, jittered back-off, counted in ``bot_inbox_write_retries_total{write}``
and logged at the first failure and every 50th after. When ``stopping()`` turns true the
write is abandoned with ``WriteAbandoned``: what is stored stays as it is and the next start
picks up from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.inbox import InboxError
from bot.metrics import BotMetrics
from bot.retry import backoff_delay

T = TypeVar("T")
logger = logging.getLogger("bot.engine")

BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 5.0


class WriteAbandoned(Exception):
    """The engine is stopping while a write keeps failing; storage keeps its previous state."""


async def until_stored(
    make: Callable[[], Awaitable[T]],
    *,
    what: str,
    metrics: BotMetrics,
    stopping: Callable[[], bool] = lambda: False,
) -> T:
    """Await ``make()`` (a fresh write each try) until it does not raise ``InboxError``."""
    failures = 0
    while True:
        try:
            return await make()
        except InboxError as exc:
            failures += 1
            metrics.inbox_write_retries.labels(write=what).inc()
            if failures == 1 or failures % 50 == 0:
                logger.error(
                    "inbox %s write failed (%d times), retrying: %s",
                    what,
                    failures,
                    exc,
                    extra={"log_type": "worker"},
                )
            if stopping():
                raise WriteAbandoned(what) from exc
            await asyncio.sleep(
                backoff_delay(failures, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS)
            )
