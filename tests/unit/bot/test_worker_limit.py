"""The adaptive worker limit and the event-loop lag probe behind it."""

from __future__ import annotations

import asyncio
import time

from bot.worker_limit import CALM_SAMPLES, AdaptiveLimit, LagProbe

DEADLINE = 5.0


def test_limit_halves_while_the_loop_lags_and_grows_back_while_it_keeps_up() -> None:
    limit = AdaptiveLimit(64, lag_target=0.005)
    assert [limit.observe(0.050) for _ in range(3)] == [32, 16, 8]
    assert limit.observe(0.004) == 8  # between half the target and the target: hold
    grown = [limit.observe(0.0) for _ in range(60)]
    assert grown[:3] == [9, 10, 11]
    assert grown[-1] == 64


def test_limit_stays_between_floor_and_ceiling() -> None:
    limit = AdaptiveLimit(8, floor=2, lag_target=0.005)
    assert min(limit.observe(1.0) for _ in range(10)) == 2
    assert max(limit.observe(0.0) for _ in range(50)) == 8
    assert AdaptiveLimit(0).value == 1  # a misconfigured ceiling still lets one event run


async def test_probe_reports_a_blocked_loop_as_lag() -> None:
    lags: list[float] = []
    reported = asyncio.Event()

    def on_lag(lag: float) -> None:
        lags.append(lag)
        if lag >= 0.04:
            reported.set()

    probe = LagProbe(on_lag, interval=0.005)
    probe.start()
    try:
        # A CPU hog holding the loop for 60 ms of its own CPU time: on a loaded machine wall
        # time alone would include time the kernel gave to other processes.
        blocked_until = time.thread_time() + 0.06
        while time.thread_time() < blocked_until:
            pass
        await asyncio.wait_for(reported.wait(), DEADLINE)
    finally:
        probe.stop()
    assert max(lags) >= 0.04


def test_acks_much_slower_than_the_recent_fastest_lower_the_limit() -> None:
    limit = AdaptiveLimit(16, lag_target=0.002, ack_margin=0.010)
    assert limit.observe(0.0, slowest_ack=0.030, fastest_ack=0.002) == 8
    assert limit.observe(0.0, slowest_ack=0.009, fastest_ack=0.008) == 8  # hold
    assert limit.observe(0.0, slowest_ack=0.003, fastest_ack=0.003) == 9


def test_a_slow_disk_alone_does_not_hold_the_workers_back() -> None:
    limit = AdaptiveLimit(16, lag_target=0.002, ack_margin=0.010)
    # Every commit takes 40 ms: acks are slow, but no slower than the disk allows.
    values = [limit.observe(0.0, slowest_ack=0.044, fastest_ack=0.040) for _ in range(10)]
    assert values[-1] == 16


def test_by_default_a_flood_pauses_the_workers_and_they_come_back_one_at_a_time() -> None:
    limit = AdaptiveLimit(4, lag_target=0.002)
    assert [limit.observe(1.0) for _ in range(3)] == [2, 1, 0]
    assert [limit.observe(0.0) for _ in range(4)] == [1, 2, 3, 4]


async def test_probe_does_not_blame_the_loop_for_time_it_spent_off_the_cpu() -> None:
    lags: list[float] = []
    ticked = asyncio.Event()

    def on_lag(lag: float) -> None:
        lags.append(lag)
        ticked.set()

    probe = LagProbe(on_lag, interval=0.005)
    probe.start()
    try:
        time.sleep(0.05)  # noqa: ASYNC251  # stands in for the kernel running another process
        await asyncio.wait_for(ticked.wait(), DEADLINE)
    finally:
        probe.stop()
    assert lags[0] < 0.01  # 45 ms late, but not the loop's doing


def test_while_the_edge_refuses_the_workers_keep_half_of_the_ceiling() -> None:
    limit = AdaptiveLimit(64, floor=4, lag_target=0.002, ack_margin=0.010)
    assert [limit.observe(0.050) for _ in range(5)][-1] == 4  # a flood of acks: starved
    assert limit.hold(True)  # the edge refuses: the limit jumps back up at once
    assert limit.value == 32
    assert min(limit.observe(0.050) for _ in range(10)) == 32
    # Slow acks no longer count; the loop's lag still does.
    assert limit.observe(0.0, slowest_ack=0.500, fastest_ack=0.002) == 33
    assert limit.observe(0.003) == 32
    assert not limit.hold(False)
    assert limit.observe(0.0, slowest_ack=0.500, fastest_ack=0.002) == 16  # acks matter again


def test_the_overload_floor_is_never_above_the_ceiling_nor_below_the_floor() -> None:
    assert AdaptiveLimit(8, floor=4).overload_floor == 4
    assert AdaptiveLimit(8, overload_floor=100).overload_floor == 8


def lagging_at_the_floor(**kwargs: int) -> AdaptiveLimit:
    limit = AdaptiveLimit(64, floor=16, lag_target=0.002, **kwargs)
    while limit.value > 16:
        limit.observe(0.005)  # a busy loop: every tick lags
    return limit


def test_behind_a_load_the_core_can_carry_the_floor_rises_to_catch_up() -> None:
    limit = lagging_at_the_floor(catch_up_floor=28)
    # 1,700 events/s arrive while 1,300/s finish: the floor holds the workers back.
    assert limit.sample_demand(arrived=850, finished=650, binding=True)
    assert limit.value == 28
    assert min(limit.observe(0.005) for _ in range(10)) == 28  # lag halves to the new floor
    # Caught up: nothing waits beyond the limit any more, and the floor is back.
    assert not limit.sample_demand(arrived=850, finished=850, binding=False)
    assert [limit.observe(0.005) for _ in range(2)] == [16, 16]


def test_a_flood_keeps_the_low_floor() -> None:
    limit = lagging_at_the_floor(catch_up_floor=28)
    # 4,000/s against 1,300/s finishing: more events in progress would only slow the acks.
    assert not limit.sample_demand(arrived=2000, finished=650, binding=True)
    assert limit.value == 16


def test_after_a_refusal_the_floor_stays_low_for_a_while() -> None:
    limit = lagging_at_the_floor(catch_up_floor=28)
    limit.hold(True)  # the edge refused: a flood admitted only as fast as it drains
    limit.hold(False)
    while limit.value > 16:
        limit.observe(0.005)
    demand = {"arrived": 700, "finished": 650, "binding": True}
    assert not any(limit.sample_demand(**demand) for _ in range(CALM_SAMPLES))
    assert limit.value == 16
    assert limit.sample_demand(**demand)  # ten calm seconds later
    assert limit.value == 28


def test_a_catch_up_floor_at_or_below_the_floor_is_off() -> None:
    limit = lagging_at_the_floor(catch_up_floor=16)
    assert not limit.sample_demand(arrived=850, finished=650, binding=True)
    assert limit.value == 16
    assert AdaptiveLimit(8, catch_up_floor=28).catch_up_floor == 8  # never above the ceiling


def test_slow_acks_stop_the_catch_up() -> None:
    limit = lagging_at_the_floor(catch_up_floor=28)
    steady = {"arrived": 850, "finished": 650, "binding": True}
    assert not limit.sample_demand(**steady, acks=850, slow_acks=20)  # 2 % over 100 ms
    assert limit.value == 16
    assert limit.sample_demand(**steady, acks=850, slow_acks=5)


def test_catching_up_is_off_unless_asked_for() -> None:
    limit = lagging_at_the_floor()
    assert not limit.sample_demand(arrived=850, finished=650, binding=True)
    assert limit.value == 16
