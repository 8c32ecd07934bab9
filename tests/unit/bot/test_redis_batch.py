"""The Redis inbox's auto-pipeline: one round trip per loop iteration, each caller its answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from bot.inbox_redis import RedisInbox
from bot.redis_batch import AutoPipeline
from tests.unit.bot.inbox_conformance import record


@pytest.fixture
async def client(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    await connection.aclose()


def _count_pipelines(client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patches ``client.pipeline``: each pipeline executed appends its command count."""
    sizes: list[int] = []
    make = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a: Any, **k: Any) -> Any:
            sizes.append(len(pipe.command_stack))
            return await execute(*a, **k)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    monkeypatch.setattr(client, "pipeline", pipeline)
    return sizes


async def test_calls_made_in_one_iteration_share_one_round_trip(
    client: aioredis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.mset({f"{redis_prefix}:{n}": str(n) for n in range(20)})
    sizes = _count_pipelines(client, monkeypatch)
    batch = AutoPipeline(client)
    answers = await asyncio.gather(
        *(
            batch.execute([("GET", f"{redis_prefix}:{n}"), ("STRLEN", f"{redis_prefix}:{n}")])
            for n in range(20)
        )
    )
    assert answers == [[str(n), len(str(n))] for n in range(20)]
    assert sizes == [40]


async def test_a_refused_command_is_its_callers_answer_and_nobody_elses(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    await client.set(f"{redis_prefix}:text", "x")
    batch = AutoPipeline(client)
    wrong, right = await asyncio.gather(
        batch.execute([("HGETALL", f"{redis_prefix}:text")]),  # a string is not a hash
        batch.execute([("GET", f"{redis_prefix}:text")]),
    )
    assert isinstance(wrong[0], ResponseError) and "WRONGTYPE" in str(wrong[0])
    assert right == ["x"]


async def test_a_pipeline_holds_at_most_max_commands_and_keeps_a_call_whole(
    client: aioredis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _count_pipelines(client, monkeypatch)
    batch = AutoPipeline(client, max_commands=4)
    calls = [[("INCR", f"{redis_prefix}:{n}")] * 3 for n in range(3)]
    answers = await asyncio.gather(*(batch.execute(call) for call in calls))
    assert answers == [[1, 2, 3]] * 3
    assert sizes == [3, 3, 3]


async def test_a_failed_connection_fails_every_caller_of_the_pipeline(
    unused_tcp_port: int,
) -> None:
    down = aioredis.Redis(port=unused_tcp_port, socket_connect_timeout=0.5)
    batch = AutoPipeline(down)
    try:
        results = await asyncio.gather(
            batch.execute([("GET", "a")]), batch.execute([("GET", "b")]), return_exceptions=True
        )
    finally:
        await down.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results)


async def test_the_inbox_loads_its_scripts_again_after_redis_forgot_them(
    start_redis: Callable[..., Any],
) -> None:
    server = start_redis()
    inbox = RedisInbox(server.url, prefix="flush", shards=4)
    await inbox.open()
    try:
        (first,) = await inbox.enqueue([record("a")])
        await inbox.client.script_flush()  # as after a restart: scripts are not persisted
        (second,) = await inbox.enqueue([record("b")])
        assert first is not None and second is not None and second.id == first.id + 1
        assert [e.dedup_key for e in await inbox.pending()] == ["a", "b"]
    finally:
        await inbox.close()
