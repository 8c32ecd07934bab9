"""What the Redis inbox does beyond the conformance suite: shards, fencing, the feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.inbox import NewReply, ReplyState, ReplyUpdate
from bot.inbox_redis import RedisInbox, ShardNotOwned
from tests.unit.bot.inbox_conformance import PAGE, record

SHARDS = 4


@dataclass
class Owner:
    token: str = "replica-a"
    shards: set[int] = field(default_factory=set)

    def owned(self) -> frozenset[int]:
        return frozenset(self.shards)


@pytest.fixture
async def owner() -> Owner:
    return Owner()


@pytest.fixture
async def inbox(redis_server: Any, redis_prefix: str, owner: Owner) -> AsyncIterator[RedisInbox]:
    backend = RedisInbox(redis_server.url, prefix=redis_prefix, shards=SHARDS, ownership=owner)
    await backend.open()
    yield backend
    await backend.close()


def _users_on_two_shards(inbox: RedisInbox) -> tuple[str, str]:
    users = [str(n) for n in range(100)]
    first = users[0]
    other = next(u for u in users if inbox.shard_of(u) != inbox.shard_of(first))
    return first, other


async def _own(inbox: RedisInbox, owner: Owner, *psids: str) -> None:
    for psid in psids:
        shard = inbox.shard_of(psid)
        owner.shards.add(shard)
        await inbox.client.set(f"{inbox.prefix}:lease:{shard}", owner.token)


async def test_an_owner_sees_only_the_events_and_replies_of_its_shards(
    inbox: RedisInbox, owner: Owner
) -> None:
    mine, theirs = _users_on_two_shards(inbox)
    await _own(inbox, owner, mine)
    stored = await inbox.enqueue([record("a", sender=mine), record("b", sender=theirs)])
    assert [e.dedup_key for e in await inbox.pending()] == ["a"]
    assert stored[0] is not None
    await inbox.commit_handled(stored[0].id, [NewReply(0, PAGE, mine, "{}")])
    assert [r.psid for r in await inbox.unsettled_replies()] == [mine]
    assert [e.dedup_key for e in await inbox.pending([inbox.shard_of(theirs)])] == ["b"]
    assert (await inbox.stats()).pending == 1  # operators see every shard


async def test_writes_for_a_shard_this_replica_does_not_own_are_refused(
    inbox: RedisInbox, owner: Owner
) -> None:
    mine, _ = _users_on_two_shards(inbox)
    (event,) = await inbox.enqueue([record("a", sender=mine)])
    assert event is not None
    with pytest.raises(ShardNotOwned):
        await inbox.commit_handled(event.id, [])
    await _own(inbox, owner, mine)
    (reply,) = await inbox.commit_handled(event.id, [NewReply(0, PAGE, mine, "{}")])
    await inbox.client.set(f"{inbox.prefix}:lease:{inbox.shard_of(mine)}", "replica-b")
    with pytest.raises(ShardNotOwned):  # taken over: no SENDING, so no send, from here
        await inbox.update_replies([ReplyUpdate(reply.id, ReplyState.SENDING, 1)])
    assert (await inbox.unsettled_replies([inbox.shard_of(mine)]))[0].state is ReplyState.PENDING


async def test_a_retried_commit_gets_the_first_replies_back_and_adds_none(
    inbox: RedisInbox, owner: Owner
) -> None:
    mine, _ = _users_on_two_shards(inbox)
    await _own(inbox, owner, mine)
    (event,) = await inbox.enqueue([record("a", sender=mine)])
    assert event is not None
    replies = [NewReply(0, PAGE, mine, "{}"), NewReply(1, PAGE, mine, "{}")]
    first = await inbox.commit_handled(event.id, replies)
    again = await inbox.commit_handled(event.id, replies)  # its answer was lost, say
    assert again == first
    assert len(await inbox.unsettled_replies()) == 2


async def test_the_feed_hands_over_events_stored_after_the_cursor(
    inbox: RedisInbox, owner: Owner
) -> None:
    mine, theirs = _users_on_two_shards(inbox)
    await inbox.enqueue([record("old", sender=mine)])
    shard = inbox.shard_of(mine)
    cursors = {shard: await inbox.feed_cursor(shard)}
    await inbox.enqueue([record("new", sender=mine), record("other", sender=theirs)])
    events = await inbox.read_feed(cursors, block_ms=1_000)
    assert [e.dedup_key for e in events] == ["new"]
    assert await inbox.read_feed(cursors, block_ms=10) == []


async def test_what_was_acknowledged_survives_a_redis_crash_and_restart(
    start_redis: Any, redis_prefix: str
) -> None:
    server = start_redis(appendfsync="always")
    inbox = RedisInbox(server.url, prefix=redis_prefix, shards=SHARDS)
    await inbox.open()
    try:
        stored = await inbox.enqueue([record("a"), record("b")])  # the edge would ack now
        server.kill()
        assert server.restart()
        assert [e.id for e in await inbox.pending()] == [e.id for e in stored if e is not None]
        assert await inbox.enqueue([record("a")]) == [None]  # and Meta's retry is a duplicate
    finally:
        await inbox.close()


async def test_more_commands_at_once_than_connections_wait_for_one_instead_of_failing(
    redis_server: Any, redis_prefix: str
) -> None:
    # Under a flood every ack, state read and reply write needs Redis at once: redis-py's
    # default pool refused the excess ("Too many connections") and events were dead-lettered.
    inbox = RedisInbox(redis_server.url, prefix=redis_prefix, shards=SHARDS, max_connections=2)
    await inbox.open()
    try:
        stored = await asyncio.gather(*(inbox.enqueue([record(f"m{n}")]) for n in range(40)))
        loads = await asyncio.gather(*(inbox.load(PAGE, f"user-{n}") for n in range(40)))
    finally:
        await inbox.close()
    assert all(batch[0] is not None for batch in stored)
    assert loads == [{}] * 40
