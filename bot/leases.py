"""Shard leases in Redis: each shard has at most one owning replica at a time.

>>> leases = ShardLeases(lambda: client, prefix="mhb", shards=16,  # doctest: +SKIP
...                      lease_seconds=5.0, clock_ms=lambda: int(time.time() * 1000))
>>> change = await leases.tick(claim=True)  # renew, heartbeat, claim a fair share  # doctest: +SKIP

A lease is a key ``P:lease:<shard>`` holding the owner's token with a ``PX`` expiry; every
tick renews the owned ones and records a heartbeat in ``P:members``. A replica that stops
ticking (``kill -9``, a stall) loses its shards when the lease expires, and the next tick of a
survivor claims them (``SET NX PX``), up to ``bot.shards.fair_share`` of the live replicas.
Writes by the engine carry the token and are fenced by ``bot.inbox_redis``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.inbox import InboxError
from bot.shards import plan_claims

# ARGV: prefix, token, now ms, ttl ms, shard count, owned shards...
# Returns {live replicas, lost shards, free shards}.
_RENEW = """
local p, token, now, ttl, shards = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
redis.call('ZADD', p .. ':members', now, token)
redis.call('ZREMRANGEBYSCORE', p .. ':members', '-inf', now - tonumber(ttl))
local lost, free = {}, {}
for i = 6, #ARGV do
  local key = p .. ':lease:' .. ARGV[i]
  local owner = redis.call('GET', key)
  if owner == token then
    redis.call('PEXPIRE', key, ttl)
  elseif not owner then
    -- expired while nobody else took it: nothing ran elsewhere, keep it
    redis.call('SET', key, token, 'PX', ttl)
  else
    lost[#lost + 1] = ARGV[i]
  end
end
for s = 0, shards - 1 do
  if redis.call('EXISTS', p .. ':lease:' .. s) == 0 then free[#free + 1] = s end
end
return {redis.call('ZCARD', p .. ':members'), lost, free}
"""

# ARGV: prefix, token, ttl ms, shards... Returns the shards now owned.
_CLAIM = """
local p, token, ttl = ARGV[1], ARGV[2], ARGV[3]
local won = {}
for i = 4, #ARGV do
  if redis.call('SET', p .. ':lease:' .. ARGV[i], token, 'NX', 'PX', ttl) then
    won[#won + 1] = ARGV[i]
  end
end
return won
"""

# ARGV: prefix, token, shards... Deletes only the leases this token still holds.
_RELEASE = """
local p, token = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local key = p .. ':lease:' .. ARGV[i]
  if redis.call('GET', key) == token then redis.call('DEL', key) end
end
redis.call('ZREM', p .. ':members', token)
return 1
"""


# ARGV: prefix, token, at most this many, shards... Releases held shards with no pending
# event and no unsettled reply (see bot.inbox_redis_scripts), so no work is in flight here.
_RELEASE_IDLE = """
local p, token, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local released = {}
for i = 4, #ARGV do
  if #released >= max then break end
  local s = ARGV[i]
  if redis.call('GET', p .. ':lease:' .. s) == token
      and redis.call('ZCARD', p .. ':pending:' .. s) == 0
      and redis.call('ZCARD', p .. ':unsettled:' .. s) == 0 then
    redis.call('DEL', p .. ':lease:' .. s)
    released[#released + 1] = s
  end
end
return released
"""


@dataclass(frozen=True, slots=True)
class LeaseChange:
    """What one tick changed: shards won, shards another replica holds now, live replicas."""

    gained: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    live: int = 1


class ShardLeases:
    """This replica's shard leases; implements ``bot.inbox_redis.ShardOwnership``.

    ``client`` returns the open Redis client (the inbox's). Ticks are driven by the caller
    (``bot.shard_feed.ShardedReplica``) every ``REDIS_CLAIM_INTERVAL_SECONDS``.
    """

    def __init__(
        self,
        client: Callable[[], aioredis.Redis],
        *,
        prefix: str,
        shards: int,
        lease_seconds: float,
        clock_ms: Callable[[], int],
        token: str | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._shards = shards
        self._ttl_ms = max(1, int(lease_seconds * 1000))
        self._clock_ms = clock_ms
        self._token = token or uuid.uuid4().hex
        self._owned: frozenset[int] = frozenset()

    @property
    def token(self) -> str:
        return self._token

    def owned(self) -> frozenset[int]:
        return self._owned

    async def tick(self, *, claim: bool = True) -> LeaseChange:
        """Renew owned leases and the heartbeat; then claim free shards up to the fair share."""
        client = self._client()
        try:
            live, lost, free = await client.eval(
                _RENEW,
                0,
                self._prefix,
                self._token,
                self._clock_ms(),
                self._ttl_ms,
                self._shards,
                *sorted(self._owned),
            )
            lost_shards = [int(s) for s in lost]
            kept = self._owned - set(lost_shards)
            wanted = plan_claims(
                owned=kept, free=(int(s) for s in free), shards=self._shards, live=int(live)
            )
            won: list[int] = []
            if claim and wanted:
                answer = await client.eval(
                    _CLAIM, 0, self._prefix, self._token, self._ttl_ms, *wanted
                )
                won = [int(s) for s in answer]
        except RedisError as exc:
            raise InboxError(f"redis lease renewal failed: {exc}") from exc
        self._owned = frozenset(kept | set(won))
        return LeaseChange(gained=won, lost=lost_shards, live=int(live))

    async def release_idle(self, shards: list[int], most: int) -> list[int]:
        """Release up to ``most`` of ``shards`` that are idle in Redis right now (rebalancing:
        a replica over its fair share hands shards to one under it)."""
        try:
            answer = await self._client().eval(
                _RELEASE_IDLE, 0, self._prefix, self._token, most, *shards
            )
        except RedisError as exc:
            raise InboxError(f"redis lease release failed: {exc}") from exc
        released = [int(s) for s in answer]
        self._owned = self._owned - set(released)
        return released

    async def release(self) -> None:
        """Give every owned shard up at once (a clean shutdown: no wait for the expiry)."""
        owned, self._owned = sorted(self._owned), frozenset()
        try:
            await self._client().eval(_RELEASE, 0, self._prefix, self._token, *owned)
        except RedisError as exc:  # they expire on their own
            raise InboxError(f"redis lease release failed: {exc}") from exc
