"""Coalescer: bounded in-flight requests, batching of the calls that had to wait, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.coalescer import Coalescer
from tests.polling import eventually

DEADLINE = 10.0


class Server:
    """Answers ``"<call>:ok"``; holds every request until ``gate`` opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.requests: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def _serve(self, calls: list[str]) -> list[str]:
        self.requests.append(calls)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return [f"{c}:ok" for c in calls]

    async def one(self, call: str) -> str:
        return (await self._serve([call]))[0]

    async def many(self, calls: list[str]) -> list[str]:
        return await self._serve(calls)


def lanes(
    server: Server, *, limit: int = 1, batch_max: int = 50, key: Callable[[str], str] = str
) -> Coalescer[str, str]:
    return Coalescer(
        limit=limit,
        batch_max=batch_max,
        send_one=server.one,
        send_many=server.many,
        key=lambda call: key(call)[0],  # calls "a1", "a2" share key "a"
        abandoned=lambda call: f"{call}:abandoned",
    )


async def test_an_idle_call_goes_alone_at_once() -> None:
    server = Server()
    server.gate.set()
    c = lanes(server)
    assert [await c.submit("a1"), await c.submit("a2")] == ["a1:ok", "a2:ok"]
    assert server.requests == [["a1"], ["a2"]]


async def test_calls_made_in_one_loop_iteration_leave_as_one_batch() -> None:
    server = Server()
    server.gate.set()
    c = lanes(server, limit=4)
    tasks = [asyncio.create_task(c.submit(f"a{i}")) for i in range(5)]
    assert await asyncio.gather(*tasks) == [f"a{i}:ok" for i in range(5)]
    # Four slots were free, yet one request carried all five: they were queued together.
    assert server.requests == [[f"a{i}" for i in range(5)]]


async def test_a_leader_cancelled_before_it_leads_passes_its_followers_on() -> None:
    server = Server()
    c = lanes(server, limit=1)
    first = asyncio.create_task(c.submit("a0"))
    await eventually(lambda: server.in_flight == 1)
    leader = asyncio.create_task(c.submit("a1"))
    followers = [asyncio.create_task(c.submit(f"a{i}")) for i in (2, 3)]
    await eventually(lambda: c.queued == 3)
    handing_over = c._dispatch

    def hand_over_then_cancel() -> None:
        handing_over()  # a1 is handed the slot and a2, a3 as its followers...
        leader.cancel()  # ...and is cancelled before it runs

    c._dispatch = hand_over_then_cancel  # type: ignore[method-assign]
    server.gate.set()
    await first
    c._dispatch = handing_over  # type: ignore[method-assign]
    async with asyncio.timeout(DEADLINE):
        assert await asyncio.gather(*followers) == ["a2:ok", "a3:ok"]
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert server.requests == [["a0"], ["a2", "a3"]]
    assert await c.submit("a4") == "a4:ok"  # no slot was lost


async def test_calls_that_wait_for_a_slot_go_out_together_in_order() -> None:
    server = Server()
    c = lanes(server, limit=1)
    first = asyncio.create_task(c.submit("a0"))
    await eventually(lambda: server.in_flight == 1)
    waiting = [asyncio.create_task(c.submit(f"a{i}")) for i in range(1, 5)]
    await eventually(lambda: c.queued == 4)
    server.gate.set()
    answers = await asyncio.gather(first, *waiting)
    assert answers == [f"a{i}:ok" for i in range(5)]
    assert server.requests == [["a0"], ["a1", "a2", "a3", "a4"]]


async def test_never_more_requests_in_flight_than_the_limit() -> None:
    server = Server()
    c = lanes(server, limit=3, batch_max=2)
    tasks = [asyncio.create_task(c.submit(f"a{i}")) for i in range(20)]
    await eventually(lambda: server.in_flight == 3 and c.queued == 20 - 3 * 2)
    server.gate.set()
    assert await asyncio.gather(*tasks) == [f"a{i}:ok" for i in range(20)]
    assert server.most_in_flight == 3
    assert max(len(r) for r in server.requests) == 2
    assert sorted(c for r in server.requests for c in r) == sorted(f"a{i}" for i in range(20))


async def test_a_batch_only_holds_calls_with_the_leaders_key() -> None:
    server = Server()
    c = lanes(server, limit=1)
    first = asyncio.create_task(c.submit("x0"))
    await eventually(lambda: server.in_flight == 1)
    waiting = [asyncio.create_task(c.submit(call)) for call in ("a1", "b1", "a2", "b2")]
    await eventually(lambda: c.queued == 4)
    server.gate.set()
    await asyncio.gather(first, *waiting)
    assert server.requests == [["x0"], ["a1", "a2"], ["b1", "b2"]]


async def test_batch_max_one_is_a_plain_limit() -> None:
    server = Server()
    c = lanes(server, limit=1, batch_max=1)
    tasks = [asyncio.create_task(c.submit(f"a{i}")) for i in range(3)]
    await eventually(lambda: c.queued == 2)
    server.gate.set()
    await asyncio.gather(*tasks)
    assert server.requests == [["a0"], ["a1"], ["a2"]]


async def test_a_cancelled_waiter_leaves_and_the_others_still_get_answers() -> None:
    server = Server()
    c = lanes(server, limit=1)
    first = asyncio.create_task(c.submit("a0"))
    await eventually(lambda: server.in_flight == 1)
    quitter = asyncio.create_task(c.submit("a1"))
    stayer = asyncio.create_task(c.submit("a2"))
    await eventually(lambda: c.queued == 2)
    quitter.cancel()
    await eventually(lambda: c.queued == 1)
    server.gate.set()
    assert await asyncio.gather(first, stayer) == ["a0:ok", "a2:ok"]
    assert server.requests == [["a0"], ["a2"]]


async def test_followers_of_a_cancelled_leader_are_answered_as_abandoned() -> None:
    server = Server()
    batch_started = asyncio.Event()

    async def hangs(calls: list[str]) -> list[str]:
        batch_started.set()
        await asyncio.Event().wait()  # a batch request that never answers
        raise AssertionError("unreachable")

    c: Coalescer[str, str] = Coalescer(
        limit=1,
        batch_max=50,
        send_one=server.one,
        send_many=hangs,
        key=lambda call: "k",
        abandoned=lambda call: f"{call}:abandoned",
    )
    first = asyncio.create_task(c.submit("a0"))
    await eventually(lambda: server.in_flight == 1)
    leader = asyncio.create_task(c.submit("a1"))
    follower = asyncio.create_task(c.submit("a2"))
    await eventually(lambda: c.queued == 2)
    server.gate.set()
    await first
    async with asyncio.timeout(DEADLINE):
        await batch_started.wait()
    leader.cancel()
    assert await follower == "a2:abandoned"
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await c.submit("a3") == "a3:ok"  # the slot came back


async def test_a_failing_batch_raises_in_every_caller_and_frees_its_slot() -> None:
    async def broken(calls: list[str]) -> list[str]:
        raise RuntimeError("bug")

    server = Server()
    c: Coalescer[str, str] = Coalescer(
        limit=1,
        batch_max=50,
        send_one=server.one,
        send_many=broken,
        key=lambda call: "k",
        abandoned=lambda call: "abandoned",
    )
    first = asyncio.create_task(c.submit("a0"))
    await eventually(lambda: server.in_flight == 1)
    waiting = [asyncio.create_task(c.submit(f"a{i}")) for i in (1, 2)]
    await eventually(lambda: c.queued == 2)
    server.gate.set()
    await first
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await c.submit("a3") == "a3:ok"


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        lanes(Server(), limit=0)
