"""A Redis ``Inbox`` and ``WindowStore`` shared by every replica (``INBOX_BACKEND=redis``).

>>> inbox = RedisInbox("redis://127.0.0.1:6379/0", prefix="mhb", shards=16)  # doctest: +SKIP
>>> await inbox.open(); await inbox.enqueue(records)                          # doctest: +SKIP

Events, the reply outbox, dedup keys, window times, conversations' state (committed by the
same script as the replies) and both dead-letter kinds live in Redis;
each write is one Lua script, so it is atomic, and with ``appendonly yes`` it is in the AOF
before the answer (``appendfsync always``: on disk; ``everysec``: up to a second at risk on
power loss; docs/scaling.md). The scripts and reads that one event-loop iteration asks
for travel in one pipeline (``bot.redis_batch``), as the SQLite inbox's writes share one
group commit. Events and replies belong to the shard of their PSID
(``bot.shards``). With an ``ownership`` (``bot.leases.ShardLeases``) the engine-facing reads
see only the shards this replica owns, and engine writes are fenced by its lease token; the
CLI and single-process use pass none and see everything. New events are announced on a
stream per shard that the owner follows (``read_feed``, ``bot.shard_feed``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from bot import inbox_redis_scripts as lua
from bot.inbox import (
    DeadLetter,
    DeadLetterKind,
    InboxError,
    InboxRecord,
    InboxStats,
    NewReply,
    Replayed,
    ReplyState,
    ReplyUpdate,
    StoredEvent,
    StoredReply,
)
from bot.redis_batch import AutoPipeline, Command
from bot.settings import BotSettings
from bot.shards import shard_of
from bot.state import StateUpdate, encode_state

T = TypeVar("T")
_PURGE_STEP = 2_000


def _with_digest(source: str) -> tuple[str, str]:
    """A script and the SHA1 digest EVALSHA names it by (the one SCRIPT LOAD computes)."""
    return source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


_SCRIPTS = {
    name: _with_digest(getattr(lua, name))
    for name in (
        "ENQUEUE",
        "COMMIT_HANDLED",
        "RECORD_FAILURE",
        "UPDATE_REPLIES",
        "REPLAY",
        "FORGET_WINDOWS",
        "TAKE_REPLAYED",
        "PURGE",
        "STATS",
        "TOUCH_WINDOW",
        "SHARD_LAG",
    )
}
DEFAULT_MAX_CONNECTIONS = 100  # redis-py's own default pool size
Cursors = dict[int, str]


class ShardNotOwned(InboxError):
    """A fenced write for a shard whose lease this replica no longer holds."""


class ShardOwnership(Protocol):
    """The shards this replica owns right now and the token its leases carry."""

    @property
    def token(self) -> str: ...

    def owned(self) -> frozenset[int]: ...


class RedisInbox:
    """Implements ``Inbox`` and ``WindowStore`` on one Redis primary (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mhb",
        shards: int = 16,
        feed_max_len: int = 100_000,
        timeout: float = 2.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        ownership: ShardOwnership | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.shards = shards
        self.ownership = ownership
        self._url = url
        self._feed_max_len = feed_max_len
        self.timeout = timeout
        self._max_connections = max_connections
        self._clock = clock
        self._client: aioredis.Redis | None = None
        self._batch: AutoPipeline | None = None

    @classmethod
    def from_settings(
        cls, settings: BotSettings, ownership: ShardOwnership | None = None
    ) -> RedisInbox:
        """The inbox the ``REDIS_*`` settings describe (``ownership``: a replica's leases)."""
        return cls(
            settings.redis_url.get_secret_value(),
            prefix=settings.redis_key_prefix,
            shards=settings.redis_shards,
            feed_max_len=settings.redis_feed_max_len,
            timeout=settings.redis_timeout_seconds,
            max_connections=settings.redis_max_connections,
            ownership=ownership,
        )

    @property
    def client(self) -> aioredis.Redis:
        """The open client (shared with ``bot.leases``); ``InboxError`` when closed."""
        if self._client is None:
            raise InboxError("inbox is closed")
        return self._client

    def shard_of(self, psid: str) -> int:
        return shard_of(psid, self.shards)

    def event_shard(self, event: InboxRecord | StoredEvent) -> int:
        """An event's shard: its sender's (events without one are spread by their key)."""
        return shard_of(event.sender_key or event.dedup_key, self.shards)

    async def open(self) -> None:
        if self._client is not None:
            return
        # A command beyond max_connections waits up to the timeout for a free connection.
        # redis-py's default pool fails it at once ("Too many connections"): under a 4,000/s
        # flood that failed about 2,800 event attempts in 12 s and dead-lettered 33 events.
        # One quick retry only: a POST must get its 503 fast while Redis is down.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self._max_connections,
            timeout=self.timeout,
            decode_responses=True,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        )
        client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        self._batch = AutoPipeline(client)
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        batch, self._batch = self._batch, None
        if batch is not None:
            await batch.wait_sent()
        if client is not None:
            await client.aclose()

    async def ping(self) -> None:
        await self._do(lambda c: c.ping())

    # --- the edge ---

    async def enqueue(self, records: Sequence[InboxRecord]) -> list[StoredEvent | None]:
        if not records:
            return []
        args: list[Any] = [self.prefix, self._feed_max_len]
        for r in records:
            args += [
                r.dedup_key,
                self.event_shard(r),
                r.page_id,
                r.sender_key,
                r.kind,
                r.timestamp_ms,
                r.payload,
                r.traceparent or "",
                repr(r.received_at),
            ]
        ids = await self._run("ENQUEUE", args)
        return [
            StoredEvent(
                id=int(i),
                page_id=r.page_id,
                sender_key=r.sender_key,
                kind=r.kind,
                timestamp_ms=r.timestamp_ms,
                dedup_key=r.dedup_key,
                payload=r.payload,
                traceparent=r.traceparent,
                received_at=r.received_at,
            )
            if int(i)
            else None
            for i, r in zip(ids, records, strict=True)
        ]

    # --- the engine (sees only owned shards when an ownership is set) ---

    async def pending(self, shards: Iterable[int] | None = None) -> list[StoredEvent]:
        """Pending events of ``shards`` (default: the owned ones), by id; forgets replay marks."""
        ids = await self._start_up_ids("pending", "events", shards)
        return [e for e in await self._events(ids, pending_only=True) if e is not None]

    async def unsettled_replies(self, shards: Iterable[int] | None = None) -> list[StoredReply]:
        """Unsettled replies of ``shards`` (default: the owned ones), by id; forgets marks."""
        ids = await self._start_up_ids("unsettled", "replies", shards)
        return [r for r in await self._replies(ids) if r is not None]

    async def take_replayed(self) -> Replayed:
        chosen = self._shards(None)
        if not chosen:
            return Replayed()
        event_ids = await self._run("TAKE_REPLAYED", [self.prefix, "events", *chosen])
        reply_ids = await self._run("TAKE_REPLAYED", [self.prefix, "replies", *chosen])
        events = await self._events(sorted(int(i) for i in event_ids), pending_only=True)
        replies = await self._replies(sorted(int(i) for i in reply_ids))
        return Replayed(
            [e for e in events if e is not None],
            [r for r in replies if r is not None and r.state is ReplyState.PENDING],
        )

    async def commit_handled(
        self, event_id: int, replies: Sequence[NewReply], state: StateUpdate | None = None
    ) -> list[StoredReply]:
        now = self._clock()
        args: list[Any] = [self.prefix, self._token(), event_id, repr(now)]
        if state is None:
            args += ["", "", ""]
        else:
            key = self._state_key(state.page_id, state.psid)
            args += ["set", key, encode_state(state.data)] if state.data else ["del", key, ""]
        for r in replies:
            args += [r.n, r.page_id, r.psid, r.body, self.shard_of(r.psid), r.state.value]
        outcome, *ids = await self._run("COMMIT_HANDLED", args)
        if outcome == "new":  # stored as given: no read back
            return [
                StoredReply(int(i), event_id, r.n, r.page_id, r.psid, r.body, r.state, now)
                for i, r in zip(ids, replies, strict=True)
            ]
        # A retried commit whose first answer was lost gets the replies stored the first time.
        stored = await self._replies([int(i) for i in ids])
        return [r for r in stored if r is not None]

    async def record_failure(self, event_id: int, attempts: int, error: str) -> None:
        await self._run("RECORD_FAILURE", [self.prefix, self._token(), event_id, attempts, error])

    async def dead_letter(self, event_id: int, error: str) -> None:
        now = repr(self._clock())
        args = [self.prefix, self._token(), event_id, now, error, "1"]
        await self._run("RECORD_FAILURE", args)

    async def update_replies(self, updates: Sequence[ReplyUpdate]) -> None:
        args: list[Any] = [self.prefix, self._token()]
        for u in updates:
            args += [
                u.reply_id,
                u.state.value,
                u.attempts,
                "" if u.error is None else "=" + u.error,
            ]
        await self._run("UPDATE_REPLIES", args)

    # --- operators (CLI) and housekeeping: every shard ---

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        p = self.prefix
        event_ids: list[Any] = await self._do(lambda c: c.zrange(f"{p}:dead:events", 0, -1))
        reply_ids: list[Any] = await self._do(lambda c: c.zrange(f"{p}:dead:replies", 0, -1))
        replies = [r for r in await self._replies([int(i) for i in reply_ids]) if r is not None]
        wanted = sorted({int(i) for i in event_ids} | {r.event_id for r in replies})
        events = {e.id: e for e in await self._events(wanted) if e is not None}
        dead = [
            DeadLetter(DeadLetterKind.HANDLER_FAILED, e.id, e, e.last_error)
            for i in event_ids
            if (e := events.get(int(i))) is not None
        ]
        dead += [
            DeadLetter(
                DeadLetterKind.REPLY_UNDELIVERABLE, r.id, events[r.event_id], r.last_error, r
            )
            for r in replies
            if r.event_id in events
        ]
        dead.sort(key=lambda d: (d.event.id, d.reply.n if d.reply else -1))
        return dead[:limit]

    async def replay(
        self, event_ids: Sequence[int] | None = None, reply_ids: Sequence[int] | None = None
    ) -> int:
        everything = event_ids is None and reply_ids is None
        events, replies = list(event_ids or ()), list(reply_ids or ())
        args = [self.prefix, repr(self._clock()), "1" if everything else "0", len(events)]
        return int(await self._run("REPLAY", [*args, *events, *replies]))

    async def stats(self) -> InboxStats:
        pending, dead, unsettled, oldest = await self._run("STATS", [self.prefix, self.shards])
        return InboxStats(
            pending=int(pending),
            oldest_pending_received_at=float(oldest) if oldest else None,
            dead_letters=int(dead),
            unsettled_replies=int(unsettled),
        )

    async def purge(self, done_before: float) -> int:
        removed, limit = 0, _PURGE_STEP
        while True:  # a bounded step per script call, so Redis never stalls on one
            gone, seen = await self._run("PURGE", [self.prefix, repr(done_before), limit])
            removed += int(gone)
            if int(seen) < limit:
                return removed
            limit = int(seen) - int(gone) + _PURGE_STEP  # the kept ones stay first in line

    # --- WindowStore ---

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        await self._run("TOUCH_WINDOW", [self.prefix, _window_field(page_id, psid), at_ms])

    async def forget_windows(self, opened_before_ms: int) -> int:
        removed, cursor = 0, "0"
        while True:  # one HSCAN step per script call, so Redis never stalls on a big hash
            cursor, gone = await self._run(
                "FORGET_WINDOWS", [self.prefix, cursor, opened_before_ms, _PURGE_STEP]
            )
            removed += int(gone)
            if cursor == "0":
                return removed

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        field = _window_field(page_id, psid)
        value = await self._read(("HGET", f"{self.prefix}:win", field))
        return int(value) if value is not None else None

    # --- StateStore (a commit stores state with its replies; these are for everything else) ---

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        key = self._state_key(page_id, psid)
        data = await self._read(("GET", key))
        return {} if data is None else dict(json.loads(data))

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        key = self._state_key(page_id, psid)
        if data:
            encoded = encode_state(data)
            await self._do(lambda c: c.set(key, encoded))
        else:
            await self._do(lambda c: c.delete(key))

    def _state_key(self, page_id: str, psid: str) -> str:
        return f"{self.prefix}:state:{page_id}:{psid}"

    # --- the shard feed (bot.shard_feed) ---

    async def feed_cursor(self, shard: int) -> str:
        """The id of the newest entry on ``shard``'s feed ("0-0" when empty)."""
        last = await self._do(lambda c: c.xrevrange(f"{self.prefix}:feed:{shard}", count=1))
        return str(last[0][0]) if last else "0-0"

    async def read_feed(self, cursors: Cursors, block_ms: int) -> list[StoredEvent]:
        """New pending events on the feeds after ``cursors`` (advanced in place), by id.

        Waits up to ``block_ms`` for the first one."""
        if not cursors:
            return []
        streams: dict[Any, Any] = {f"{self.prefix}:feed:{s}": c for s, c in cursors.items()}
        answer: Any = await self._do(lambda c: c.xread(streams, block=block_ms, count=1_000))
        ids: list[int] = []
        for name, entries in answer or ():
            shard = int(str(name).rsplit(":", 1)[1])
            for entry_id, fields in entries:
                cursors[shard] = str(entry_id)
                ids.append(int(fields["id"]))
        events = await self._events(sorted(ids), pending_only=True)
        return [e for e in events if e is not None]

    async def shard_lag(self) -> list[tuple[int, float | None]]:
        """Per shard (index = shard): pending events and the oldest one's ``received_at``."""
        rows = await self._run("SHARD_LAG", [self.prefix, self.shards])
        return [(int(n), float(rcv) if rcv else None) for n, rcv in rows]

    # --- internals ---

    def _shards(self, shards: Iterable[int] | None) -> list[int]:
        if shards is not None:
            return sorted(shards)
        if self.ownership is not None:
            return sorted(self.ownership.owned())
        return list(range(self.shards))

    def _token(self) -> str:
        return self.ownership.token if self.ownership is not None else ""

    async def _start_up_ids(self, index: str, kind: str, shards: Iterable[int] | None) -> list[int]:
        """Ids in the shards' ``index`` sets; their replay marks go (the caller has them all)."""
        chosen, p = self._shards(shards), self.prefix

        async def read(c: aioredis.Redis) -> list[Any]:
            async with c.pipeline(transaction=True) as pipe:
                for s in chosen:
                    pipe.zrange(f"{p}:{index}:{s}", 0, -1)
                    pipe.delete(f"{p}:replayed:{kind}:{s}")
                return list(await pipe.execute())

        answers = await self._do(read)
        return sorted(int(i) for ids in answers[::2] for i in ids)

    async def _events(
        self, ids: Sequence[int], *, pending_only: bool = False
    ) -> list[StoredEvent | None]:
        rows = await self._hashes("e", ids)
        return [
            _event(i, h) if h and (h["state"] == "p" or not pending_only) else None
            for i, h in zip(ids, rows, strict=True)
        ]

    async def _replies(self, ids: Sequence[int]) -> list[StoredReply | None]:
        rows = await self._hashes("r", ids)
        return [_reply(i, h) if h else None for i, h in zip(ids, rows, strict=True)]

    async def _hashes(self, kind: str, ids: Sequence[int]) -> list[dict[str, str]]:
        if not ids:
            return []
        return await self._reads([("HGETALL", f"{self.prefix}:{kind}:{i}") for i in ids])

    async def _read(self, command: Command) -> Any:
        (answer,) = await self._reads([command])
        return answer

    async def _reads(self, commands: Sequence[Command]) -> list[Any]:
        """Plain commands through the shared pipeline; ``InboxError`` if any failed."""
        try:
            answers = await self._pipelined(commands)
        except RedisError as exc:
            raise InboxError(f"redis failed: {exc}") from exc
        for answer in answers:
            if isinstance(answer, ResponseError):
                raise InboxError(f"redis failed: {answer}") from answer
        return answers

    async def _run(self, script: str, args: Sequence[Any]) -> Any:
        """One script, sent with whatever else this loop iteration asks of Redis."""
        source, sha = _SCRIPTS[script]
        client = self.client
        try:
            (answer,) = await self._pipelined([("EVALSHA", sha, 0, *args)])
            if isinstance(answer, NoScriptError):  # first use, or a restarted Redis: load it
                await client.script_load(source)
                (answer,) = await self._pipelined([("EVALSHA", sha, 0, *args)])
        except RedisError as exc:
            raise InboxError(f"redis {script.lower()} failed: {exc}") from exc
        if isinstance(answer, ResponseError):
            if str(answer).startswith("NOTOWNER"):
                raise ShardNotOwned(str(answer)) from answer
            raise InboxError(f"redis {script.lower()} failed: {answer}") from answer
        return answer

    async def _pipelined(self, commands: Sequence[Command]) -> list[Any]:
        """``commands``' answers (a refused one as its ``ResponseError``) from the shared
        pipeline of this loop iteration; ``RedisError`` when the pipeline failed."""
        if self._batch is None:
            raise InboxError("inbox is closed")
        return await self._batch.execute(commands)

    async def _do(self, call: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        client = self.client
        try:
            return await call(client)
        except RedisError as exc:
            raise InboxError(f"redis failed: {exc}") from exc


def _window_field(page_id: str, psid: str) -> str:
    return f"{page_id}:{psid}"


def _event(event_id: int, h: dict[str, str]) -> StoredEvent:
    return StoredEvent(
        id=event_id,
        page_id=h["page"],
        sender_key=h["sender"],
        kind=h["kind"],
        timestamp_ms=int(h["ts"]),
        dedup_key=h["dedup"],
        payload=h["payload"],
        traceparent=h["tp"] or None,
        received_at=float(h["rcv"]),
        attempts=int(h.get("attempts", 0)),
        last_error=h.get("last_error"),
    )


def _reply(reply_id: int, h: dict[str, str]) -> StoredReply:
    return StoredReply(
        id=reply_id,
        event_id=int(h["event"]),
        n=int(h["n"]),
        page_id=h["page"],
        psid=h["psid"],
        body=h["body"],
        state=ReplyState(h["state"]),
        created_at=float(h["created"]),
        attempts=int(h.get("attempts", 0)),
        last_error=h.get("last_error"),
    )
