"""Bounded in-flight requests with opportunistic batching (asyncio only, no HTTP).

>>> lanes = Coalescer(limit=8, batch_max=50, send_one=post, send_many=post_batch,  # doctest: +SKIP
...                   key=lambda call: call.token, abandoned=give_up)
>>> answer = await lanes.submit(call)                                              # doctest: +SKIP

A call that finds a free slot is sent alone at once, so at low load the latency is one round
trip and nothing waits on a timer. A call that finds every slot busy queues; when a slot
frees, the oldest queued call becomes the *leader*: it takes up to ``batch_max`` queued calls
with its own key (a batch carries one access token) and sends them as one request, in its own
task and context, then hands every follower its answer. No background task exists, so there
is nothing to start or stop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")
R = TypeVar("R")


class _Lead:
    """Marker a queued call receives instead of an answer: a slot is now yours, lead a batch."""


_LEAD = _Lead()


@dataclass(eq=False, slots=True)
class _Waiter(Generic[C, R]):
    call: C
    key: Hashable
    future: asyncio.Future[R | _Lead] = field(repr=False)


class Coalescer(Generic[C, R]):
    """At most ``limit`` requests in flight; calls that had to wait go out together.

    ``send_one(call)`` and ``send_many(calls)`` must answer every call (``send_many`` returns
    one answer per call, in order) rather than raise for ordinary failures. When a leader is
    cancelled mid-request its followers get ``abandoned(call)`` (the request may or may not
    have reached the server, so callers treat it like a timeout); any other exception from
    ``send_many`` reaches every caller in the batch.
    """

    def __init__(
        self,
        *,
        limit: int,
        batch_max: int,
        send_one: Callable[[C], Awaitable[R]],
        send_many: Callable[[list[C]], Awaitable[list[R]]],
        key: Callable[[C], Hashable],
        abandoned: Callable[[C], R],
    ) -> None:
        if limit < 1 or batch_max < 1:
            raise ValueError("limit and batch_max must be at least 1")
        self._free = limit
        self._batch_max = batch_max
        self._send_one = send_one
        self._send_many = send_many
        self._key = key
        self._abandoned = abandoned
        self._queue: deque[_Waiter[C, R]] = deque()

    @property
    def queued(self) -> int:
        """Calls waiting for a slot right now."""
        return len(self._queue)

    async def submit(self, call: C) -> R:
        """Send ``call`` alone if a slot is free, else wait and ride in (or lead) a batch."""
        if self._free > 0 and not self._queue:
            self._free -= 1
            try:
                return await self._send_one(call)
            finally:
                self._release()
        waiter: _Waiter[C, R] = _Waiter(
            call, self._key(call), asyncio.get_running_loop().create_future()
        )
        self._queue.append(waiter)
        try:
            outcome = await waiter.future
        except asyncio.CancelledError:
            self._forget(waiter)
            raise
        if not isinstance(outcome, _Lead):
            return outcome
        return await self._lead(waiter)

    async def _lead(self, leader: _Waiter[C, R]) -> R:
        """We hold a slot: send our call plus same-key followers, then answer them."""
        followers = self._take(leader.key, self._batch_max - 1)
        try:
            if not followers:
                return await self._send_one(leader.call)
            answers = await self._send_many([leader.call, *(w.call for w in followers)])
            if len(answers) != len(followers) + 1:
                raise RuntimeError(f"send_many answered {len(answers)} of {len(followers) + 1}")
        except asyncio.CancelledError:
            for w in followers:
                if not w.future.done():
                    w.future.set_result(self._abandoned(w.call))
            raise
        except BaseException as exc:
            for w in followers:
                if not w.future.done():
                    w.future.set_exception(exc)
            raise
        finally:
            self._release()
        for w, answer in zip(followers, answers[1:], strict=True):
            if not w.future.done():  # a follower cancelled meanwhile no longer listens
                w.future.set_result(answer)
        return answers[0]

    def _take(self, key: Hashable, most: int) -> list[_Waiter[C, R]]:
        taken: list[_Waiter[C, R]] = []
        if most <= 0:
            return taken
        rest: deque[_Waiter[C, R]] = deque()
        for w in self._queue:
            if len(taken) < most and w.key == key and not w.future.done():
                taken.append(w)
            else:
                rest.append(w)
        self._queue = rest
        return taken

    def _release(self) -> None:
        """Hand the slot to the oldest live waiter, or return it to the pool."""
        while self._queue:
            w = self._queue.popleft()
            if not w.future.done():
                w.future.set_result(_LEAD)
                return
        self._free += 1

    def _forget(self, waiter: _Waiter[C, R]) -> None:
        """A waiter was cancelled: leave the queue, or give back the slot it was handed."""
        try:
            self._queue.remove(waiter)
        except ValueError:
            pass
        fut = waiter.future
        if fut.done() and not fut.cancelled() and isinstance(fut.result(), _Lead):
            self._release()
