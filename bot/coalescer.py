"""Bounded in-flight requests with batching of the calls that arrive together (asyncio only).

>>> lanes = Coalescer(limit=8, batch_max=50, send_one=post, send_many=post_batch,  # doctest: +SKIP
...                   key=lambda call: call.token, abandoned=give_up)
>>> answer = await lanes.submit(call)                                              # doctest: +SKIP

Calls queue, and the queue is dispatched once per event-loop iteration (and whenever a request
frees its slot): each free slot goes to the oldest queued call, which *leads* a request holding
it and up to ``batch_max - 1`` more queued calls with its key (a batch carries one access
token). Calls made in the same iteration, typically the replies of one inbox commit, so leave
as one Graph batch instead of one HTTP request each; a lone call waits for no timer, only for
the end of the iteration. No background task exists, so there is nothing to start or stop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")
R = TypeVar("R")


@dataclass(eq=False, slots=True)
class _Waiter(Generic[C, R]):
    call: C
    key: Hashable
    future: asyncio.Future[R | _Lead[C, R]] = field(repr=False)


@dataclass(eq=False, slots=True)
class _Lead(Generic[C, R]):
    """What a queued call receives instead of an answer: a slot, and the calls it carries."""

    followers: list[_Waiter[C, R]]


class Coalescer(Generic[C, R]):
    """At most ``limit`` requests in flight; calls queued together go out together.

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
        self._dispatch_scheduled = False

    @property
    def queued(self) -> int:
        """Calls waiting for a slot right now."""
        return len(self._queue)

    async def submit(self, call: C) -> R:
        """Queue ``call``; it rides in (or leads) the next request a slot allows."""
        loop = asyncio.get_running_loop()
        waiter: _Waiter[C, R] = _Waiter(call, self._key(call), loop.create_future())
        self._queue.append(waiter)
        if self._free > 0 and not self._dispatch_scheduled:
            # At the end of this iteration: the calls queued meanwhile share the request.
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch)
        try:
            outcome = await waiter.future
        except asyncio.CancelledError:
            self._forget(waiter)
            raise
        if not isinstance(outcome, _Lead):
            return outcome
        return await self._lead(waiter, outcome.followers)

    async def _lead(self, leader: _Waiter[C, R], followers: list[_Waiter[C, R]]) -> R:
        """We hold a slot: send our call plus the followers handed to us, then answer them."""
        # A follower cancelled between the hand-over and now no longer listens.
        followers = [w for w in followers if not w.future.done()]
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

    def _dispatch(self) -> None:
        """Give each free slot to the oldest live queued call, with its followers."""
        self._dispatch_scheduled = False
        while self._free > 0 and self._queue:
            leader = self._queue.popleft()
            if leader.future.done():
                continue  # cancelled while queued
            self._free -= 1
            leader.future.set_result(_Lead(self._take(leader.key, self._batch_max - 1)))

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
        """A request is over: its slot goes to the calls that queued meanwhile."""
        self._free += 1
        self._dispatch()

    def _forget(self, waiter: _Waiter[C, R]) -> None:
        """A waiter was cancelled: leave the queue, or pass on the slot it was handed."""
        try:
            self._queue.remove(waiter)
        except ValueError:
            pass
        fut = waiter.future
        if fut.done() and not fut.cancelled():
            lead = fut.result()
            if isinstance(lead, _Lead):
                # Handed a slot but gone before leading: its followers queue first again.
                self._queue.extendleft(reversed([w for w in lead.followers if not w.future.done()]))
                self._release()
