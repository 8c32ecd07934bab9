"""Handlers with faults on demand, for the alert proofs (``BOT_HANDLERS_MODULE``).

The reference bot's handlers, except for texts that are commands:

* ``stall <seconds>`` blocks the event loop (``time.sleep`` inside ``async def``: the bug);
* ``fail`` raises, so the event is retried and finally dead-lettered;
* ``hold`` waits (without blocking the loop) until the file named by ``FAULT_RELEASE_FILE``
  exists, so the event stays pending.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bot import default_handlers
from bot.routing import Context, Reply, Router

router = Router()


class HandlerFault(RuntimeError):
    """The ``fail`` command's deliberate handler failure."""


@router.on_text
async def faulty_text(ctx: Context) -> Reply | None:
    text = ctx.text or ""
    if text.startswith("stall "):
        time.sleep(float(text.split()[1]))  # noqa: ASYNC251 - the fault: a blocked loop
    elif text == "fail":
        raise HandlerFault("a handler failure on demand")
    elif text == "hold":
        # Another process creates the file: polling it is the simplest cross-process signal.
        release = Path(os.environ["FAULT_RELEASE_FILE"])
        while not release.exists():  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.1)
    return default_handlers.you_said(ctx)


router.on_quick_reply(default_handlers.you_said)
router.on_attachments(default_handlers.attachment_received)
router.on_postback(default_handlers.GET_STARTED)(default_handlers.welcome)
router.on_postback(default_handlers.postback_received)
