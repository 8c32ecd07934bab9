"""The thin asyncio shell around a ``Scheduler``: run due items as tasks, under a limit.

>>> lane = Lane(run=process, order=lambda job: job.order, limit=lambda: 64)  # doctest: +SKIP
>>> lane.start(); lane.add("alice", job.order, job, ready_at=now)           # doctest: +SKIP
>>> await lane.join(); await lane.stop(grace=10)                           # doctest: +SKIP

``run(item)`` returns ``None`` when the item is finished, or the wall-clock time at which to
run it again (back-off, a wait for an echo); meanwhile its key's later items wait. ``add`` only
schedules a pump for the next loop iteration, so a caller on the ack path pays for no task.
One timer covers every held or backed-off item.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from bot.cancel import cancel_and_wait
from bot.scheduler import Scheduler

T = TypeVar("T")
logger = logging.getLogger("bot.lane")
# Loop timers fire with millisecond resolution: an item due within this is due now.
_DUE_SLACK_SECONDS = 0.001


class Lane(Generic[T]):
    """Runs each key's items in order, at most ``limit()`` at once across keys."""

    def __init__(
        self,
        *,
        run: Callable[[T], Awaitable[float | None]],
        order: Callable[[T], Any],
        limit: Callable[[], int],
        clock: Callable[[], float] = time.time,
        name: str = "lane",
    ) -> None:
        self._run = run
        self._order = order
        self._limit = limit
        self._clock = clock
        self._name = name
        self._scheduler = Scheduler[T]()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._pump_pending = False
        self._running = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def active(self) -> int:
        """Items running right now."""
        return len(self._tasks)

    def __len__(self) -> int:
        """Items scheduled or running."""
        return len(self._scheduler)

    def start(self) -> None:
        self._running = True
        self.poke()

    def add(self, key: Hashable, order: Any, item: T, *, ready_at: float = 0.0) -> None:
        self._scheduler.add(key, order, item, ready_at=ready_at)
        self._idle.clear()
        self.poke()

    def expedite(self, key: Hashable) -> None:
        """End ``key``'s back-off now."""
        self._scheduler.expedite(key, self._clock())
        self.poke()

    async def join(self) -> None:
        """Wait until no item is scheduled or running."""
        await self._idle.wait()

    async def stop(self, grace: float) -> None:
        """Stop starting items, give running ones ``grace`` seconds, then cancel them."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            await asyncio.gather(*(cancel_and_wait(task) for task in late))
        self._scheduler.clear()
        self._idle.set()

    def pump(self) -> None:
        """Start every due item there is room for, and arm the timer for the next one."""
        self._pump_pending = False
        if not self._running:
            return
        scheduler = self._scheduler
        now = self._clock()
        loop = asyncio.get_running_loop()
        while len(self._tasks) < self._limit():
            got = scheduler.take(now + _DUE_SLACK_SECONDS)
            if got is None:
                break
            key, item = got
            task = loop.create_task(self._run_one(key, item))
            self._tasks.add(task)
        due = scheduler.next_due()
        if due is not None and due <= now and len(self._tasks) >= self._limit():
            return  # due already, but no room: a finishing item pumps again
        if due is not None and (self._timer is None or due < self._timer_due):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_due = due
            self._timer = loop.call_later(max(0.0, due - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def poke(self) -> None:
        """Pump on the next loop iteration (once, however often it is called meanwhile)."""
        if not self._pump_pending and self._running:
            self._pump_pending = True
            asyncio.get_running_loop().call_soon(self.pump)

    async def _run_one(self, key: Hashable, item: T) -> None:
        """Run ``item``, then go on with the next due item while there is room: under load
        one task serves many items instead of one task each."""
        try:
            while True:
                again: float | None = None
                try:
                    again = await self._run(item)
                except Exception:  # run() handles its own failures: this is a bug, not a retry
                    logger.exception("%s item failed", self._name, extra={"log_type": "worker"})
                finally:  # also when cancelled: the key must not stay busy
                    if self._running:
                        if again is None:
                            self._scheduler.done(key)
                        else:
                            self._scheduler.retry(key, item, order=self._order(item), at=again)
                if not self._running or len(self._tasks) > self._limit():
                    break
                got = self._scheduler.take(self._clock() + _DUE_SLACK_SECONDS)
                if got is None:
                    break
                key, item = got
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            if self._running:
                self.pump()
            if not self._tasks and (not self._running or not len(self._scheduler)):
                self._idle.set()
