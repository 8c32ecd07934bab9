"""Per-key ordered work with holds and back-off (pure: no asyncio, time is a parameter).

Each key (a sender, a conversation) has its items in ``order``; only the key's first item may
run, and only one item of a key runs at a time. An item becomes ready at its ``ready_at``
(the engine holds a new event for the ordering window, so a late earlier event of the same
sender sorts first). A failed item goes back to the front of its key and blocks it until its
back-off ends, while other keys carry on.

>>> s = Scheduler[str]()
>>> s.add("alice", (20, 2), "second", ready_at=0.0)
>>> s.add("alice", (10, 1), "first", ready_at=0.0)
>>> s.add("bob", (15, 3), "bob's", ready_at=5.0)
>>> s.take(now=1.0), s.take(now=1.0)   # alice is busy; bob is held until 5.0
(('alice', 'first'), None)
>>> s.retry("alice", "first", order=(10, 1), at=3.0); s.next_due()
3.0
>>> s.take(now=3.0), s.take(now=5.0)
(('alice', 'first'), ('bob', "bob's"))
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class _Key(Generic[T]):
    name: Hashable
    items: list[tuple[Any, int, float, T]] = field(
        default_factory=list
    )  # (order, seq, ready_at, item)
    blocked_until: float = 0.0
    busy: bool = False
    due: float | None = None  # the due time of this key's live entry in the ready heap


class Scheduler(Generic[T]):
    """Keys with ordered items; ``take`` hands out the first item of a ready, idle key.

    ``order`` values of one key must be comparable (tuples such as ``(timestamp_ms, id)``).
    """

    def __init__(self) -> None:
        self._keys: dict[Hashable, _Key[T]] = {}
        self._heap: list[tuple[float, int, _Key[T]]] = []  # (due, seq, key); stale ones skipped
        self._seq = itertools.count()
        self._items = 0
        self._busy = 0

    def __len__(self) -> int:
        """Items scheduled or running."""
        return self._items

    @property
    def busy(self) -> int:
        """Keys with an item running."""
        return self._busy

    def add(self, key: Hashable, order: Any, item: T, *, ready_at: float) -> None:
        """Schedule ``item`` under ``key``; it may run from ``ready_at`` on, after the key's
        items that sort before it."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(key)
        heapq.heappush(state.items, (order, next(self._seq), ready_at, item))
        self._items += 1
        self._refresh(state)

    def take(self, now: float) -> tuple[Hashable, T] | None:
        """The first item of a key that is due at ``now`` and idle; the key becomes busy."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, state = heapq.heappop(heap)
            if state.due != due or state.busy or not state.items:
                continue  # stale: the key changed after this entry was pushed
            state.due = None
            if self._due(state) > now:  # a held earlier item became the head meanwhile
                self._refresh(state)
                continue
            _, _, _, item = heapq.heappop(state.items)
            state.busy = True
            self._busy += 1
            return state.name, item
        return None

    def done(self, key: Hashable) -> None:
        """The item ``take`` gave out for ``key`` is finished."""
        state = self._keys[key]
        state.busy = False
        self._busy -= 1
        self._items -= 1
        if state.items:
            self._refresh(state)
        else:
            del self._keys[key]

    def retry(self, key: Hashable, item: T, *, order: Any, at: float) -> None:
        """Put the running ``item`` back in front of ``key``'s items; the key waits until ``at``."""
        state = self._keys[key]
        state.busy = False
        self._busy -= 1
        state.blocked_until = at
        heapq.heappush(state.items, (order, next(self._seq), 0.0, item))
        self._refresh(state)

    def expedite(self, key: Hashable, now: float) -> None:
        """End ``key``'s back-off now (what it waited for has happened); no-op for unknown keys."""
        state = self._keys.get(key)
        if state is not None and state.blocked_until > now:
            state.blocked_until = now
            self._refresh(state)

    def next_due(self) -> float | None:
        """When the earliest waiting item becomes due (``None``: nothing waits)."""
        heap = self._heap
        while heap:
            due, _, state = heap[0]
            if state.due == due and not state.busy and state.items:
                return due
            heapq.heappop(heap)
        return None

    def clear(self) -> list[T]:
        """Forget everything; returns the items that were not running."""
        left = [entry[3] for state in self._keys.values() for entry in state.items]
        self._keys.clear()
        self._heap.clear()
        self._items = self._busy = 0
        return left

    def _due(self, state: _Key[T]) -> float:
        return max(state.items[0][2], state.blocked_until)

    def _refresh(self, state: _Key[T]) -> None:
        if state.busy or not state.items:
            return
        due = self._due(state)
        if state.due is not None and state.due <= due:
            return  # the live entry fires no later; take() re-checks the head then
        state.due = due
        heapq.heappush(self._heap, (due, next(self._seq), state))
