"""The window cache answers from memory and writes to the inbox only when it matters."""

from __future__ import annotations

from bot.inbox_memory import MemoryInbox
from bot.window import decide_window
from bot.window_cache import WindowCache

MINUTE_MS = 60_000


class CountingInbox(MemoryInbox):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.reads = 0

    async def touch_window(self, page_id: str, psid: str, at_ms: int) -> None:
        self.writes += 1
        await super().touch_window(page_id, psid, at_ms)

    async def window_opened_at(self, page_id: str, psid: str) -> int | None:
        self.reads += 1
        return await super().window_opened_at(page_id, psid)


async def run(write: object) -> None:
    if write is not None:
        await write  # type: ignore[misc]


async def test_chatty_user_costs_one_write_a_minute() -> None:
    inbox = CountingInbox()
    cache = WindowCache(inbox)
    for offset in (0, 1000, 30_000, MINUTE_MS, MINUTE_MS + 5):
        await run(cache.touch("p", "u", 1_000_000 + offset))
    assert inbox.writes == 2
    assert await inbox.window_opened_at("p", "u") == 1_000_000 + MINUTE_MS


async def test_reply_after_touch_needs_no_read() -> None:
    inbox = CountingInbox()
    cache = WindowCache(inbox)
    await run(cache.touch("p", "u", 1_000))
    decision = await cache.decide("p", "u", lambda last: decide_window(last, 2_000))
    assert decision.allowed and inbox.reads == 0


async def test_a_no_is_checked_against_the_inbox_once() -> None:
    inbox = CountingInbox()
    await inbox.touch_window("p", "u", 1_000)  # stored by an earlier process
    cache = WindowCache(inbox)
    rule = lambda last: decide_window(last, 2_000)  # noqa: E731
    assert (await cache.decide("p", "u", rule)).allowed
    assert not (await cache.decide("p", "other", rule)).allowed
    assert not (await cache.decide("p", "other", rule)).allowed
    assert inbox.reads == 2  # one per user, then the cache is authoritative


async def test_least_recently_used_user_is_evicted_when_full() -> None:
    inbox = CountingInbox()
    cache = WindowCache(inbox, max_entries=2)
    for user in ("a", "b", "c"):
        await run(cache.touch("p", user, 1_000))
    rule = lambda last: decide_window(last, 2_000)  # noqa: E731
    assert (await cache.decide("p", "c", rule)).allowed and inbox.reads == 0
    assert (await cache.decide("p", "a", rule)).allowed and inbox.reads == 1  # from the inbox


async def test_writes_go_through_the_injected_writer() -> None:
    inbox = CountingInbox()
    written: list[tuple[str, str, int]] = []

    async def write(page_id: str, psid: str, at_ms: int) -> None:
        written.append((page_id, psid, at_ms))

    cache = WindowCache(inbox, write=write)
    await run(cache.touch("p", "u", 1_000))
    assert written == [("p", "u", 1_000)] and inbox.writes == 0
