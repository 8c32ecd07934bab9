"""Stop a background task for sure: cancel it until it has ended.

A cancellation can be swallowed by the library code it lands in: redis-py, interrupted while
it sends a command, returns from the call as if nothing happened. A ``while True`` loop then
runs on, and whoever awaits it after one ``cancel()`` waits for good: shutdown hangs until a
supervisor's SIGKILL, and a replica's shards wait out their leases instead of being handed
over. ``cancel_and_wait`` cancels again until the task is done.

>>> await cancel_and_wait(feed_task)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from typing import Any

# How long one cancellation gets before the next: a loop that swallowed one is back in an
# ordinary await (a sleep, a blocking read) well within this.
RECANCEL_SECONDS = 0.05


async def cancel_and_wait(
    task: asyncio.Task[Any] | None, *, every: float = RECANCEL_SECONDS
) -> None:
    """Cancel ``task`` (again every ``every`` seconds) until it has ended; its exception, if
    it failed instead, is consumed (the task's own code logs what matters)."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled():
        task.exception()
