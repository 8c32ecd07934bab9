"""Event-loop lag as a histogram: how late a periodic timer fires, in wall-clock seconds.

Every request and event runs on one loop, so a handler that blocks it (``time.sleep`` or CPU
work inside ``async def``) delays every ack, but the ack histogram cannot see it: each request
starts its clock only once the loop gets back to it. A timer that should fire every
``interval`` seconds and fires ``lag`` seconds late measures exactly that wait, so a stall of
3 s shows up as one 3 s observation (and in ``_sum`` as 3 s of lag), whatever blocked it.

Unlike the workers' ``LagProbe`` (which discounts time the process was not scheduled, to
throttle only its own pressure), this counts all lateness: it is what the acks experienced.

>>> monitor = LoopLagMonitor(metrics.event_loop_lag)  # doctest: +SKIP
>>> monitor.start(); ...; await monitor.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from bot.cancel import cancel_and_wait

# Ten ticks a second: cheap, and fine enough for lags that matter (tens of ms and up).
DEFAULT_INTERVAL_SECONDS = 0.1


class Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class LoopLagMonitor:
    """Observes into ``histogram`` how late each ``interval`` timer fired on the running loop."""

    def __init__(self, histogram: Observer, *, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self._histogram = histogram
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
            due = time.perf_counter() + self._interval
            await asyncio.sleep(self._interval)
            self._histogram.observe(max(0.0, time.perf_counter() - due))
