"""One replica's shard runtime on a real Redis: takeover order, the feed, losing a lease."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bot.inbox import NewReply, ReplyState, ReplyUpdate, StoredEvent, StoredReply
from bot.inbox_redis import RedisInbox
from bot.leases import ShardLeases
from bot.metrics import BotMetrics
from bot.shard_feed import ShardedReplica
from tests.polling import eventually
from tests.unit.bot.inbox_conformance import PAGE, record

SHARDS = 2


@dataclass
class EngineProbe:
    """Records what the replica hands the engine, in order."""

    calls: list[str] = field(default_factory=list)
    submitted: list[StoredEvent] = field(default_factory=list)
    restored: list[StoredReply] = field(default_factory=list)
    running: bool = True

    def adopt(self, replies: list[StoredReply], events: list[StoredEvent]) -> None:
        self.calls.append(f"adopt {len(replies)} replies, {len(events)} events")
        self.restored += replies
        self.submitted += events

    def submit(self, events: list[StoredEvent]) -> None:
        self.calls.append(f"submit {len(events)}")
        self.submitted += events

    def note_ack(self, seconds: float, total: float) -> None: ...


@dataclass
class Replica:
    runtime: ShardedReplica
    engine: EngineProbe
    metrics: BotMetrics
    lost: list[list[int]]


@pytest.fixture
async def replicas(redis_server: Any, redis_prefix: str) -> AsyncIterator[Any]:
    made: list[Replica] = []

    async def make(lease_seconds: float = 0.3) -> Replica:
        holder: list[RedisInbox] = []
        leases = ShardLeases(
            lambda: holder[0].client,
            prefix=redis_prefix,
            shards=SHARDS,
            lease_seconds=lease_seconds,
            clock_ms=lambda: int(time.time() * 1000),
        )
        inbox = RedisInbox(redis_server.url, prefix=redis_prefix, shards=SHARDS, ownership=leases)
        holder.append(inbox)
        await inbox.open()
        metrics = BotMetrics(CollectorRegistry())
        lost: list[list[int]] = []
        runtime = ShardedReplica(inbox, leases, metrics, claim_interval=3600, on_lost=lost.append)
        replica = Replica(runtime, EngineProbe(), metrics, lost)
        await runtime.start(replica.engine)  # type: ignore[arg-type]
        made.append(replica)
        return replica

    yield make
    for replica in made:
        await replica.runtime.stop()
        await replica.runtime.release()
        await replica.runtime.inbox.close()


async def test_a_taken_over_shard_restores_unsettled_replies_before_its_pending_events(
    replicas: Any,
) -> None:
    dead = await replicas()
    await dead.runtime.tick()
    inbox = dead.runtime.inbox
    answered, waiting = await inbox.enqueue([record("a"), record("b")])
    (reply,) = await inbox.commit_handled(
        answered.id, [NewReply(0, PAGE, answered.sender_key, "{}")]
    )
    await inbox.update_replies([ReplyUpdate(reply.id, ReplyState.SENDING, 1)])  # then kill -9

    survivor = await replicas()
    await eventually(
        lambda: _ticked_to(survivor, SHARDS), within=10, interval=0.05, what="takeover"
    )
    calls = survivor.engine.calls
    assert "adopt 1 replies, 1 events" in calls
    assert [(r.id, r.state) for r in survivor.engine.restored] == [
        (reply.id, ReplyState.SENDING)  # the outbox waits for its echo before any resend
    ]
    assert [e.id for e in survivor.engine.submitted] == [waiting.id]
    assert survivor.metrics.registry.get_sample_value("bot_shards_owned") == SHARDS
    gained = {"outcome": "gained"}
    assert survivor.metrics.registry.get_sample_value("bot_shard_claims_total", gained) == SHARDS

    (fresh,) = await inbox.enqueue([record("c")])  # stored by any replica's edge
    await eventually(
        lambda: fresh.id in {e.id for e in survivor.engine.submitted}, what="fed to the owner"
    )


async def test_a_replica_that_lost_its_lease_to_a_peer_is_told_to_stop(replicas: Any) -> None:
    stalled = await replicas()
    await stalled.runtime.tick()
    peer = await replicas()
    await eventually(lambda: _ticked_to(peer, SHARDS), within=10, interval=0.05, what="takeover")
    await stalled.runtime.tick()
    assert [sorted(shards) for shards in stalled.lost] == [list(range(SHARDS))]
    assert stalled.metrics.registry.get_sample_value("bot_shards_owned") == 0


async def _ticked_to(replica: Replica, owned: int) -> bool:
    await replica.runtime.tick()
    return len(replica.runtime.leases.owned()) == owned


async def test_a_replica_over_its_share_hands_only_idle_shards_to_a_newcomer(
    replicas: Any,
) -> None:
    first = await replicas(lease_seconds=5.0)
    await first.runtime.tick()
    assert first.runtime.leases.owned() == set(range(SHARDS))
    inbox = first.runtime.inbox
    (busy,) = await inbox.enqueue([record("a")])  # pending: its shard is not idle
    busy_shard = inbox.event_shard(busy)

    newcomer = await replicas(lease_seconds=5.0)  # joins: heartbeat only
    await first.runtime.tick()  # over its share now: releases the idle shard only
    assert first.runtime.leases.owned() == {busy_shard}
    await newcomer.runtime.tick()
    assert newcomer.runtime.leases.owned() == {1 - busy_shard}
    released = {"outcome": "released"}
    assert first.metrics.registry.get_sample_value("bot_shard_claims_total", released) == 1
