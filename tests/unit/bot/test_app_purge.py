"""The app's purge loop: done events past their retention, window times past every window."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from bot.app import create_app
from bot.inbox_memory import MemoryInbox
from bot.routing import Router
from bot.testing import PAGE_ID, RecordingSendApi, make_settings
from tests.polling import eventually

DAY_MS = 24 * 3600 * 1000


async def test_window_times_older_than_the_longest_window_are_forgotten_at_start() -> None:
    inbox = MemoryInbox()
    await inbox.open()
    now = int(time.time() * 1000)
    await inbox.touch_window(PAGE_ID, "gone", now - 8 * DAY_MS)  # past the 7-day human agent tag
    await inbox.touch_window(PAGE_ID, "tagged", now - 6 * DAY_MS)  # a HUMAN_AGENT reply may go
    await inbox.touch_window(PAGE_ID, "recent", now - 1000)
    settings = make_settings(human_agent_window_seconds=7 * 24 * 3600)
    app = create_app(
        settings,
        inbox=inbox,
        router=Router(),
        send_api=RecordingSendApi(),
        registry=CollectorRegistry(),
    )

    async def forgotten() -> bool:
        return await inbox.window_opened_at(PAGE_ID, "gone") is None

    async with app.router.lifespan_context(app):
        await eventually(forgotten, what="the 8-day-old window forgotten")
    assert await inbox.window_opened_at(PAGE_ID, "tagged") == now - 6 * DAY_MS
    assert await inbox.window_opened_at(PAGE_ID, "recent") == now - 1000
    await inbox.close()
