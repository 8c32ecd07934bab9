"""The asyncio shell around the scheduler: limits, order per key, retries, stop."""

from __future__ import annotations

import asyncio
import time

from bot.lane import Lane
from tests.polling import eventually

DEADLINE = 5.0


async def test_items_run_in_order_per_key_and_never_more_than_the_limit_at_once() -> None:
    running, peak, done = 0, 0, []

    async def run(item: tuple[str, int]) -> float | None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        done.append(item)
        return None

    lane: Lane[tuple[str, int]] = Lane(run=run, order=lambda item: item[1], limit=lambda: 3)
    lane.start()
    for n in (3, 1, 2):
        for key in "abcdef":
            lane.add(key, n, (key, n))
    await asyncio.wait_for(lane.join(), DEADLINE)
    assert peak == 3 and len(done) == 18
    for key in "abcdef":
        assert [n for k, n in done if k == key] == [1, 2, 3]


async def test_a_retried_item_runs_again_at_its_time_while_other_keys_go_on() -> None:
    runs: list[str] = []

    async def run(item: str) -> float | None:
        runs.append(item)
        if item == "flaky" and runs.count("flaky") == 1:
            return time.time() + 0.05
        return None

    lane: Lane[str] = Lane(run=run, order=lambda item: 0 if item == "flaky" else 1, limit=lambda: 1)
    lane.start()
    lane.add("a", 0, "flaky")
    lane.add("a", 1, "after flaky")
    lane.add("b", 1, "other")
    await asyncio.wait_for(lane.join(), DEADLINE)
    assert runs == ["flaky", "other", "flaky", "after flaky"]


async def test_stop_lets_running_items_finish_within_the_grace_then_cancels() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def run(item: str) -> float | None:
        if item == "stuck":
            await asyncio.sleep(60)
        await release.wait()
        finished.append(item)
        return None

    lane: Lane[str] = Lane(run=run, order=lambda item: 0, limit=lambda: 4)
    lane.start()
    lane.add("a", 0, "quick")
    lane.add("b", 0, "stuck")
    await eventually(lambda: lane.active == 2, within=DEADLINE)
    release.set()
    await lane.stop(grace=0.2)
    assert finished == ["quick"] and lane.active == 0 and not lane.running
