"""The inbox conformance suite, run against every backend the bot ships."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.inbox_memory import MemoryInbox
from bot.inbox_sqlite import SqliteInbox
from tests.unit.bot.inbox_conformance import FakeClock, InboxConformance


class TestInboxBackends(InboxConformance):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture(params=["memory", "sqlite"])
    async def inbox(
        self, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
    ) -> AsyncIterator[Any]:
        if request.param == "memory":
            backend: Any = MemoryInbox(clock=clock)
        else:
            backend = SqliteInbox(tmp_path / "inbox.db", synchronous="NORMAL", clock=clock)
        await backend.open()
        yield backend
        await backend.close()
