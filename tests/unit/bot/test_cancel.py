"""``cancel_and_wait`` ends a task even when one cancellation is swallowed on the way (as
redis-py does when it lands while a command is sent): shutdown must not hang on it."""

from __future__ import annotations

import asyncio

from bot.cancel import cancel_and_wait


async def test_a_loop_that_swallows_a_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def feed_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed == 0:  # the library returned normally instead
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(feed_loop())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_and_wait(task), timeout=5)
    assert task.cancelled()
    assert swallowed == 1


async def test_a_task_that_failed_or_ended_is_waited_for_quietly() -> None:
    async def fails() -> None:
        raise RuntimeError("broken")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(failed)  # its error was its own to log: not raised here
    await cancel_and_wait(None)
    assert failed.done() and isinstance(failed.exception(), RuntimeError)
