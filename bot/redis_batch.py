"""Redis commands issued in one event-loop iteration leave together, as one pipeline.

Through redis-py's asyncio client every command pays its own pool checkout, timeout and
round trip. A Redis-backed replica issued about eight per event (the enqueue, the feed's
read, the state load, the commit and its read-back, the window, the reply's two state
changes), and that overhead, not Redis, was most of its CPU per event. The SQLite inbox
already gathers the writes of one iteration into one group commit; this gives the Redis
inbox the same shape: whatever the iteration's tasks ask for is sent in one pipeline (no
``MULTI``: every script is atomic on its own), in the order asked, and each caller gets its
own answers back, a command's error included.

>>> batch = AutoPipeline(client)                                       # doctest: +SKIP
>>> stored, window = await asyncio.gather(                             # doctest: +SKIP
...     batch.execute([("EVALSHA", sha, 0, *args)]), batch.execute([("HGET", key, field)]))
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

Command = tuple[Any, ...]
DEFAULT_MAX_COMMANDS = 1_000  # per pipeline: one huge reply would hold a connection long


class AutoPipeline:
    """Queues ``execute`` calls and sends each iteration's calls as pipelines.

    A call's commands stay together in one pipeline. A connection failure fails every call
    of its pipeline with that error (redis-py has already retried it as its ``Retry`` says);
    a command Redis refused comes back in its place as the ``ResponseError``.
    """

    def __init__(self, client: aioredis.Redis, *, max_commands: int = DEFAULT_MAX_COMMANDS) -> None:
        self._client = client
        self._max_commands = max_commands
        self._queued: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def execute(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """The answers to ``commands``, once the pipeline they join has been answered."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queued.append((commands, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    async def wait_sent(self) -> None:
        """Until every pipeline already handed to Redis is answered (before closing)."""
        while self._sending or self._queued:
            await asyncio.gather(*self._sending, return_exceptions=True)
            await asyncio.sleep(0)

    def _flush(self) -> None:
        self._flush_scheduled = False
        queued, self._queued = self._queued, []
        chunk: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        size = 0
        for entry in queued:
            if chunk and size + len(entry[0]) > self._max_commands:
                self._send_soon(chunk)
                chunk, size = [], 0
            chunk.append(entry)
            size += len(entry[0])
        if chunk:
            self._send_soon(chunk)

    def _send_soon(self, chunk: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(chunk))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, chunk: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for commands, _ in chunk:
                    for command in commands:
                        pipe.execute_command(*command)
                answers = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # closing: the callers are cancelled with it
            for _, future in chunk:
                future.cancel()
            raise
        except Exception as exc:  # every caller of this pipeline sees why it failed
            for _, future in chunk:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for commands, future in chunk:
            end = start + len(commands)
            if not future.done():  # a caller may have been cancelled meanwhile
                future.set_result(answers[start:end])
            start = end
