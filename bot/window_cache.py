"""Window-opening times per user, cached in front of the ``WindowStore`` so replies need no read.

The engine touches the window before it dispatches an event, so for the usual "user writes,
bot answers" the cache already knows the answer. The store is read only when the cache says
"not allowed" without having seen the stored value (e.g. the first reply after a restart).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.inbox import WindowStore
from bot.window import WindowDecision

# Skip the write when a new action is less than this much newer than the stored one: a chatty
# user costs one write a minute, and after a restart their window may end that much early,
# which errs on the safe side of the 24-hour rule.
PERSIST_GRANULARITY_MS = 60_000
MAX_ENTRIES = 100_000


@dataclass(slots=True)
class _Entry:
    latest: int | None  # newest action seen, stored or not
    persisted: int | None  # newest action known to be in the inbox
    authoritative: bool  # the inbox's value has been merged in


class WindowCache:
    """LRU of ``(page_id, psid) -> last window-opening action (epoch ms)`` over a ``WindowStore``.

    ``write`` persists one action (default ``store.touch_window``); the caller awaits it
    together with the event's commit, so both share one group commit.
    """

    def __init__(
        self,
        inbox: WindowStore,
        *,
        max_entries: int = MAX_ENTRIES,
        persist_granularity_ms: int = PERSIST_GRANULARITY_MS,
        write: Callable[[str, str, int], Awaitable[None]] | None = None,
    ) -> None:
        self._inbox = inbox
        self._write = write if write is not None else inbox.touch_window
        self._max_entries = max_entries
        self._granularity = persist_granularity_ms
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def touch(self, page_id: str, psid: str, at_ms: int) -> Awaitable[None] | None:
        """Record a window-opening action (keeps the newest) in the cache right away.

        Returns the store write to await when the action should be persisted, else ``None``.
        """
        entry = self._entry((page_id, psid))
        entry.latest = at_ms if entry.latest is None else max(entry.latest, at_ms)
        if entry.persisted is not None and at_ms < entry.persisted + self._granularity:
            return None
        entry.persisted = at_ms if entry.persisted is None else max(entry.persisted, at_ms)
        return self._write(page_id, psid, at_ms)

    async def decide(
        self, page_id: str, psid: str, rule: Callable[[int | None], WindowDecision]
    ) -> WindowDecision:
        """Apply ``rule`` to the user's last action, reading the inbox only to overturn a "no"."""
        key = (page_id, psid)
        entry = self._entries.get(key)
        decision = rule(entry.latest if entry else None)
        if decision.allowed or (entry is not None and entry.authoritative):
            return decision
        stored = await self._inbox.window_opened_at(page_id, psid)
        entry = self._entry(key)
        entry.authoritative = True
        if stored is not None:
            entry.latest = stored if entry.latest is None else max(entry.latest, stored)
            entry.persisted = stored if entry.persisted is None else max(entry.persisted, stored)
        return rule(entry.latest)

    def _entry(self, key: tuple[str, str]) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(None, None, authoritative=False)
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry
