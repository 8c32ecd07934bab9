"""Conversation state through the real engine and SQLite inbox: stored with the replies, once.

A handler's ``ctx.state`` changes reach the inbox in the same write as its replies, so an
attempt that fails, or dies before its commit, leaves no state behind for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from bot.app import create_app
from bot.inbox import Inbox, StoredReply
from bot.inbox_redis import RedisInbox
from bot.inbox_sqlite import SqliteInbox
from bot.routing import Context, Reply, Router
from bot.state import MemoryStateStore, StateUpdate
from bot.testing import (
    PAGE_ID,
    PSID,
    RecordingSendApi,
    event_of,
    make_settings,
    signed_envelope,
    text_item,
)


def counting_router(attempts: list[int], *, fail_first: bool = False) -> Router:
    """Counts a user's messages in ``ctx.state``; with ``fail_first`` the first attempt fails
    after the handler returned (its reply cannot be stored), when its state is already made."""
    router = Router()

    @router.on_text
    def count(ctx: Context) -> Reply:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        attempts.append(ctx.state["count"])
        if fail_first and len(attempts) == 1:
            return Reply.of({"text": "oops", "metadata": object()})
        return Reply.text(f"message {ctx.state['count']}")

    return router


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path, router: Router, api: RecordingSendApi, inbox: Inbox | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The bot app with its lifespan, on the SQLite inbox at ``tmp_path/inbox.db``."""
    settings = make_settings(
        inbox_path=tmp_path / "inbox.db",
        handler_backoff_base_seconds=0.01,
        shutdown_grace_seconds=0.2,
    )
    app = create_app(
        settings, inbox=inbox, router=router, send_api=api, registry=CollectorRegistry()
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            yield client


async def say(client: httpx.AsyncClient, text: str) -> None:
    body, headers = signed_envelope([text_item(text)])
    assert (await client.post("/webhook", content=body, headers=headers)).status_code == 200


async def stored_state(path: Path) -> dict[str, Any]:
    inbox = SqliteInbox(path)
    await inbox.open()
    try:
        return await inbox.load(PAGE_ID, PSID)
    finally:
        await inbox.close()


async def test_a_handler_that_fails_once_advances_the_state_once_and_replies_once(
    tmp_path: Path,
) -> None:
    attempts: list[int] = []
    api = RecordingSendApi()
    async with running_bot(tmp_path, counting_router(attempts, fail_first=True), api) as bot:
        await say(bot, "first")
        await api.wait_for(1)
        await say(bot, "second")
        await api.wait_for(2)
    # The failed attempt's count of 1 was never stored: its retry counted from 0 again.
    assert attempts == [1, 1, 2]
    assert api.texts == ["message 1", "message 2"]
    assert await stored_state(tmp_path / "inbox.db") == {"count": 2}


async def test_on_redis_too_a_failed_attempt_leaves_no_state(
    tmp_path: Path, redis_server: Any, redis_prefix: str
) -> None:
    inbox = RedisInbox(redis_server.url, prefix=redis_prefix, shards=4)
    await inbox.open()
    attempts: list[int] = []
    api = RecordingSendApi()
    try:
        router = counting_router(attempts, fail_first=True)
        async with running_bot(tmp_path, router, api, inbox) as bot:
            await say(bot, "first")
            await api.wait_for(1)
        assert (attempts, api.texts) == ([1, 1], ["message 1"])
        assert await inbox.load(PAGE_ID, PSID) == {"count": 1}
    finally:
        await inbox.close()


class DiesBeforeCommitting(SqliteInbox):
    """The process dies after the handler returned, before its commit landed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reached = asyncio.Event()

    async def commit_handled(
        self, event_id: int, replies: Any, state: StateUpdate | None = None
    ) -> list[StoredReply]:
        self.reached.set()
        await asyncio.Event().wait()  # never: the stop cancels it, nothing is written
        raise AssertionError("unreachable")


async def test_a_restart_before_the_commit_runs_the_handler_again_from_the_old_state(
    tmp_path: Path,
) -> None:
    attempts: list[int] = []
    dying = DiesBeforeCommitting(tmp_path / "inbox.db")
    await dying.open()
    try:
        async with running_bot(
            tmp_path, counting_router(attempts), RecordingSendApi(), dying
        ) as bot:
            await say(bot, "hello")
            await asyncio.wait_for(dying.reached.wait(), timeout=10)
    finally:
        await dying.close()
    api = RecordingSendApi()
    async with running_bot(tmp_path, counting_router(attempts), api):
        await api.wait_for(1)  # the restart found the event pending and ran it again
    assert attempts == [1, 1]  # ...from the state before the lost attempt
    assert api.texts == ["message 1"]
    assert await stored_state(tmp_path / "inbox.db") == {"count": 1}


async def test_a_store_the_handlers_set_themselves_is_kept_and_saved_by_the_router(
    tmp_path: Path,
) -> None:
    attempts: list[int] = []
    router = counting_router(attempts)
    router.state_store = own = MemoryStateStore()
    api = RecordingSendApi()
    async with running_bot(tmp_path, router, api) as bot:
        await say(bot, "hi")
        await api.wait_for(1)
    assert await own.load(PAGE_ID, PSID) == {"count": 1}
    assert await stored_state(tmp_path / "inbox.db") == {}


async def test_the_callers_store_is_loaded_and_its_changes_reported_not_saved() -> None:
    store = MemoryStateStore()
    await store.save(PAGE_ID, PSID, {"count": 4})
    result = await counting_router([]).dispatch(event_of(text_item("x")), state_store=store)
    assert result.state == StateUpdate(PAGE_ID, PSID, {"count": 5})
    assert await store.load(PAGE_ID, PSID) == {"count": 4}  # the caller commits it
