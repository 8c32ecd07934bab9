"""The platform's sense of time, injectable so an hour of Meta behaviour runs in seconds.

Everything time-dependent in the mock (messaging window, retry schedule, the 15-minute
alert, the 1-hour unsubscribe) reads ``clock.now()`` and waits with ``clock.sleep_until()``.

>>> clock = ControllableClock(start=1_700_000_000.0, frozen=True)
>>> clock.advance(3600); clock.now()
1700003600.0
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds as the platform sees them."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (wakes early when the clock is moved)."""


class ControllableClock:
    """Real time by default; tests and the control API can freeze, advance or speed it up."""

    def __init__(
        self, start: float | None = None, *, rate: float = 1.0, frozen: bool = False
    ) -> None:
        self._anchor_real = time.monotonic()
        self._anchor_virtual = time.time() if start is None else start
        self._rate = rate
        self._frozen = frozen
        self._waiters: set[asyncio.Future[None]] = set()

    def now(self) -> float:
        if self._frozen:
            return self._anchor_virtual
        return self._anchor_virtual + (time.monotonic() - self._anchor_real) * self._rate

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def rate(self) -> float:
        return self._rate

    def freeze(self) -> None:
        self._reanchor()
        self._frozen = True
        self._wake()

    def resume(self, rate: float | None = None) -> None:
        """Unfreeze; ``rate`` > 1 makes virtual time run faster than real time."""
        self._reanchor()
        self._frozen = False
        if rate is not None:
            if rate <= 0:
                raise ValueError("rate must be positive")
            self._rate = rate
        self._wake()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._reanchor()
        self._anchor_virtual += seconds
        self._wake()

    def reset(self) -> None:
        """Back to real time at rate 1."""
        self._anchor_real = time.monotonic()
        self._anchor_virtual = time.time()
        self._rate = 1.0
        self._frozen = False
        self._wake()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    async def sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while (remaining := deadline - self.now()) > 0:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                timeout = None if self._frozen else remaining / self._rate
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    def snapshot(self) -> dict[str, float | bool]:
        return {"now": self.now(), "frozen": self._frozen, "rate": self._rate}

    def _reanchor(self) -> None:
        self._anchor_virtual = self.now()
        self._anchor_real = time.monotonic()

    def _wake(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                # A waiter may belong to another loop (tests); set it from its own loop.
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
