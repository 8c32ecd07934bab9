"""The inbox conformance suite, run against every backend the bot ships."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.inbox_memory import MemoryInbox
from bot.inbox_redis import RedisInbox
from bot.inbox_sqlite import SqliteInbox
from tests.unit.bot.inbox_conformance import FakeClock, InboxConformance


class TestInboxBackends(InboxConformance):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture(params=["memory", "sqlite", "redis"])
    async def inbox(
        self, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
    ) -> AsyncIterator[Any]:
        if request.param == "memory":
            backend: Any = MemoryInbox(clock=clock)
        elif request.param == "sqlite":
            backend = SqliteInbox(tmp_path / "inbox.db", synchronous="NORMAL", clock=clock)
        else:
            server = request.getfixturevalue("redis_server")
            prefix = request.getfixturevalue("redis_prefix")
            backend = RedisInbox(server.url, prefix=prefix, shards=4, clock=clock)
        await backend.open()
        yield backend
        await backend.close()
