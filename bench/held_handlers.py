"""Handlers that never finish (``BOT_HANDLERS_MODULE``), for the ack path's "edge alone" row.

With ``WORKER_CONCURRENCY=1`` the one worker holds the first event and the others wait in the
inbox, so the core goes to the edge: receive, verify, store durably, ack. That is what an edge
process of an edge/worker split would do, with its workers elsewhere: an upper bound for the
split's ack rate on the same core.
"""

from __future__ import annotations

import asyncio

from bot.routing import Context, Router

router = Router()


@router.on_text
async def hold(ctx: Context) -> None:
    await asyncio.Event().wait()
