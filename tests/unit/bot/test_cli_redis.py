"""``messenger-bot dead-letters`` on ``INBOX_BACKEND=redis``: one list for every shard."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.cli import main
from bot.inbox_redis import RedisInbox
from tests.unit.bot.inbox_conformance import record


def test_dead_letters_of_every_shard_are_listed_and_replayed(
    redis_server: Any,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def dead_letter_two() -> list[int]:
        inbox = RedisInbox(redis_server.url, prefix=redis_prefix, shards=4)
        await inbox.open()
        stored = await inbox.enqueue([record("a", sender="1"), record("b", sender="2")])
        ids = [e.id for e in stored if e is not None]
        for event_id in ids:
            await inbox.dead_letter(event_id, "RuntimeError: bug")
        await inbox.close()
        return ids

    ids = asyncio.run(dead_letter_two())
    for name, value in {
        "INBOX_BACKEND": "redis",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "REDIS_SHARDS": "4",
    }.items():
        monkeypatch.setenv(name, value)

    assert main(["dead-letters", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["kind"], d["id"], d["error"]) for d in listed] == [
        ("handler_failed", ids[0], "RuntimeError: bug"),
        ("handler_failed", ids[1], "RuntimeError: bug"),
    ]
    assert main(["dead-letters", "replay", "--id", str(ids[1])]) == 0
    assert "replayed 1 dead letter" in capsys.readouterr().out
    assert main(["dead-letters", "list", "--json"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)] == [ids[0]]
