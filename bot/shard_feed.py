"""One replica of a Redis-backed bot: its shard leases, and the events of its shards fed in.

>>> replica = ShardedReplica.from_settings(settings, metrics)   # doctest: +SKIP
>>> await replica.inbox.open(); await engine.start()           # doctest: +SKIP
>>> await replica.start(engine); edge.attach(replica.inbox, replica.sink(engine))
...                                                              # doctest: +SKIP
>>> await replica.stop(); await engine.stop(); await replica.release()  # doctest: +SKIP

Shutdown keeps that order: the feed stops first, the leases are renewed while the engine
finishes its in-flight work, and only then are they released.

Any replica's edge stores any event; only the owner of the event's shard runs it. The edge's
own ``submit`` is therefore not used (``sink``): the owner follows each owned shard's feed
stream and submits what appears there. When a shard is gained (a peer died, or at start-up)
its unsettled replies are restored first (those left ``sending`` wait for their echo), then
its pending events are submitted. Losing a lease to a peer means this process stalled past
it: it stops itself (SIGTERM) rather than race the new owner; its writes are fenced anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable

from bot.cancel import cancel_and_wait
from bot.engine import Engine
from bot.inbox import InboxError, StoredEvent
from bot.inbox_redis import Cursors, RedisInbox
from bot.leases import LeaseChange, ShardLeases
from bot.metrics import BotMetrics
from bot.settings import BotSettings
from bot.shards import fair_share

logger = logging.getLogger("bot.shards")

_FEED_BLOCK_MS = 500
_RETRY_SECONDS = 0.5


def _stop_this_process(shards: list[int]) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class ShardedReplica:
    """Drives ``ShardLeases`` every claim interval and feeds owned shards to the engine."""

    def __init__(
        self,
        inbox: RedisInbox,
        leases: ShardLeases,
        metrics: BotMetrics,
        *,
        claim_interval: float,
        on_lost: Callable[[list[int]], None] = _stop_this_process,
    ) -> None:
        self.inbox = inbox
        self.leases = leases
        self._metrics = metrics
        self._interval = claim_interval
        # A blocking read must return well within the socket timeout.
        self._block_ms = max(10, min(_FEED_BLOCK_MS, int(inbox.timeout * 1000 / 2)))
        self._on_lost = on_lost
        self._engine: Engine | None = None
        self._cursors: Cursors = {}
        # While rebalancing asks Redis to release idle shards, their new events wait here.
        self._draining: frozenset[int] = frozenset()
        self._held: list[StoredEvent] = []
        self._lease_task: asyncio.Task[None] | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self._stopping = False
        # A shard keeps its label from the start, so an alert can see it stay unowned.
        for shard in range(inbox.shards):
            metrics.shard_owned.labels(shard=str(shard)).set(0)

    @classmethod
    def from_settings(cls, settings: BotSettings, metrics: BotMetrics) -> ShardedReplica:
        holder: list[RedisInbox] = []
        leases = ShardLeases(
            lambda: holder[0].client,
            prefix=settings.redis_key_prefix,
            shards=settings.redis_shards,
            lease_seconds=settings.redis_lease_seconds,
            clock_ms=lambda: int(time.time() * 1000),
        )
        inbox = RedisInbox.from_settings(settings, ownership=leases)
        holder.append(inbox)
        return cls(inbox, leases, metrics, claim_interval=settings.redis_claim_interval_seconds)

    def sink(self, engine: Engine) -> _FeedOnlySink:
        """What the edge submits to: the feed, not the edge, hands events to the engine."""
        return _FeedOnlySink(engine)

    async def start(self, engine: Engine) -> None:
        """Join (heartbeat without claiming, so peers started together can register), then
        claim and feed from the next tick on."""
        self._engine = engine
        self._stopping = False
        await self._tick(claim=False)
        loop = asyncio.get_running_loop()
        self._lease_task = loop.create_task(self._lease_loop(), name="shard-leases")
        self._feed_task = loop.create_task(self._feed_loop(), name="shard-feed")

    async def stop(self) -> None:
        """Before the engine stops: no more events fed, no more shards claimed. The leases
        are still renewed while the engine finishes its in-flight work."""
        self._stopping = True
        await cancel_and_wait(self._feed_task)
        self._feed_task = None

    async def release(self) -> None:
        """After the engine stopped: hand the shards over now instead of at lease expiry."""
        self._stopping = True
        await cancel_and_wait(self._lease_task)
        self._lease_task = None
        owned = len(self.leases.owned())
        try:
            await self.leases.release()
        except InboxError as exc:
            logger.warning("shard release failed: %s", exc, extra={"log_type": "lifecycle"})
            return
        self._metrics.shard_claims.labels(outcome="released").inc(owned)
        self._set_owned_gauges()

    async def tick(self) -> None:
        """One lease round and lag refresh (the lease loop calls it; tests may too)."""
        await self._tick(claim=True)

    async def _tick(self, *, claim: bool) -> None:
        change = await self.leases.tick(claim=claim)
        self._metrics.replicas_live.set(change.live)
        await self._apply(change)
        if claim:
            await self._rebalance(change.live)
        self._set_owned_gauges()
        now = time.time()
        for shard, (pending, oldest) in enumerate(await self.inbox.shard_lag()):
            label = str(shard)
            self._metrics.shard_pending.labels(shard=label).set(pending)
            age = max(0.0, now - oldest) if oldest is not None else 0.0
            self._metrics.shard_oldest_age.labels(shard=label).set(age)

    async def _apply(self, change: LeaseChange) -> None:
        if change.lost:
            self._metrics.shard_claims.labels(outcome="lost").inc(len(change.lost))
            for shard in change.lost:
                self._cursors.pop(shard, None)
            logger.critical(
                "shard leases lost to another replica (this one stalled): stopping",
                extra={"log_type": "lifecycle", "shards": change.lost},
            )
            self._on_lost(change.lost)
        if change.gained:
            self._metrics.shard_claims.labels(outcome="gained").inc(len(change.gained))
            await self._take_over(change.gained)

    async def _take_over(self, shards: list[int]) -> None:
        engine = self._engine
        assert engine is not None
        # The cursor first: an event stored meanwhile comes twice, which the engine ignores.
        cursors = {shard: await self.inbox.feed_cursor(shard) for shard in shards}
        replies = await self.inbox.unsettled_replies(shards)
        events = await self.inbox.pending(shards)
        engine.adopt(replies, events)
        self._cursors.update(cursors)
        logger.info(
            "shards taken: %d events, %d unsettled replies",
            len(events),
            len(replies),
            extra={"log_type": "lifecycle", "shards": shards},
        )

    async def _rebalance(self, live: int) -> None:
        """Over the fair share (a replica joined): release idle shards for it to claim.

        Idle means no pending event and no unsettled reply in Redis, so nothing of the
        shard is in this engine; new events of the candidates are held meanwhile and go to
        the engine only for the shards this replica keeps."""
        owned = self.leases.owned()
        surplus = len(owned) - fair_share(self.inbox.shards, live=live)
        if surplus <= 0:
            return
        self._draining = owned
        try:
            released = await self.leases.release_idle(sorted(owned, reverse=True), surplus)
        finally:
            self._draining = frozenset()
            held, self._held = self._held, []
        for shard in released:
            self._cursors.pop(shard, None)
        kept = [e for e in held if self.inbox.event_shard(e) not in released]
        if kept and self._engine is not None:
            self._engine.submit(kept)
        if released:
            self._metrics.shard_claims.labels(outcome="released").inc(len(released))
            logger.info(
                "idle shards released for a replica under its share",
                extra={"log_type": "lifecycle", "shards": released},
            )

    def _set_owned_gauges(self) -> None:
        owned = self.leases.owned()
        self._metrics.shards_owned.set(len(owned))
        for shard in range(self.inbox.shards):
            self._metrics.shard_owned.labels(shard=str(shard)).set(1 if shard in owned else 0)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._tick(claim=not self._stopping)
            except InboxError as exc:  # Redis away: leases lapse; fenced writes keep us safe
                logger.error("shard lease tick failed: %s", exc, extra={"log_type": "lifecycle"})

    async def _feed_loop(self) -> None:
        while True:
            if not self._cursors:
                await asyncio.sleep(_FEED_BLOCK_MS / 1000)
                continue
            cursors = dict(self._cursors)
            try:
                events = await self.inbox.read_feed(cursors, self._block_ms)
            except InboxError as exc:
                logger.error("shard feed read failed: %s", exc, extra={"log_type": "worker"})
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for shard, cursor in cursors.items():
                if shard in self._cursors:
                    self._cursors[shard] = cursor
            if self._draining:
                self._held += [e for e in events if self.inbox.event_shard(e) in self._draining]
                events = [e for e in events if self.inbox.event_shard(e) not in self._draining]
            if events and self._engine is not None:
                self._engine.submit(events)


class _FeedOnlySink:
    """The edge's view of the engine when the shard feed delivers events."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def submit(self, events: list[StoredEvent]) -> None:
        """Stored is all the edge does: the shard's owner (maybe another replica) runs them."""

    def note_ack(self, seconds: float, total: float) -> None:
        self._engine.note_ack(seconds, total)

    @property
    def running(self) -> bool:
        return self._engine.running
