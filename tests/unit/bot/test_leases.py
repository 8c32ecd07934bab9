"""Shard leases on a real Redis: a fair split, takeover after a crash, fencing a stalled owner."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.leases import ShardLeases
from tests.polling import eventually

SHARDS = 8


@pytest.fixture
async def client(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    await c.aclose()


def _leases(client: aioredis.Redis, prefix: str, *, lease_seconds: float = 5.0) -> ShardLeases:
    return ShardLeases(
        lambda: client,
        prefix=prefix,
        shards=SHARDS,
        lease_seconds=lease_seconds,
        clock_ms=lambda: int(time.time() * 1000),
    )


async def test_replicas_that_join_together_split_the_shards_without_overlap(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    a, b = _leases(client, redis_prefix), _leases(client, redis_prefix)
    await a.tick(claim=False)
    await b.tick(claim=False)
    gained_a, gained_b = (await a.tick()).gained, (await b.tick()).gained
    assert len(gained_a) == len(gained_b) == SHARDS // 2
    assert a.owned() | b.owned() == set(range(SHARDS))
    assert not a.owned() & b.owned()
    assert (await a.tick()).gained == []  # renewing keeps them, nothing more to take


async def test_a_crashed_replicas_shards_go_to_the_survivor_after_the_lease(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    dead, survivor = (_leases(client, redis_prefix, lease_seconds=0.4) for _ in range(2))
    await dead.tick()
    assert dead.owned() == set(range(SHARDS))
    assert (await survivor.tick()).gained == []
    started = time.monotonic()
    await eventually(
        lambda: _owns_all(survivor), within=10, interval=0.05, what="takeover"
    )  # the dead one never ticks again
    assert time.monotonic() - started >= 0.3


async def test_a_stalled_replica_learns_it_lost_its_shards(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    stalled, peer = (_leases(client, redis_prefix, lease_seconds=0.3) for _ in range(2))
    await stalled.tick()
    await eventually(lambda: _owns_all(peer), within=10, interval=0.05, what="takeover")
    change = await stalled.tick()
    assert sorted(change.lost) == list(range(SHARDS))
    assert stalled.owned() == frozenset()


async def test_a_clean_shutdown_hands_the_shards_over_at_once(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    leaving, staying = _leases(client, redis_prefix), _leases(client, redis_prefix)
    await leaving.tick()
    await leaving.release()
    assert len((await staying.tick()).gained) == SHARDS


async def _owns_all(leases: ShardLeases) -> bool:
    await leases.tick()
    return leases.owned() == set(range(SHARDS))
