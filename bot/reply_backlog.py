"""Unsettled replies per conversation, and how many of them the core could send now.

A conversation sends in order, so when its oldest reply waits (a back-off after Graph
failed, or an echo that would settle it) every later reply of that conversation waits too.
Graph, not this core, sets the pace of those: the admission gate must count only the rest
(``ready``). Counts are kept as replies come and go, so reading them costs nothing.

>>> backlog = ReplyBacklog()
>>> for conversation in ["ann", "ann", "ann", "bob"]:
...     backlog.add(conversation)
>>> backlog.wait("ann")  # ann's first reply backs off: her other two queue behind it
>>> backlog.total, backlog.ready
(4, 1)
>>> backlog.add("ann"); backlog.settle("bob"); backlog.total, backlog.ready
(4, 0)
>>> backlog.resume("ann"); backlog.ready
4
"""

from __future__ import annotations

from collections.abc import Hashable


class ReplyBacklog:
    """``add``/``settle`` per reply; ``wait``/``resume`` when a conversation's head waits."""

    def __init__(self) -> None:
        self._unsettled: dict[Hashable, int] = {}
        self._waits: dict[Hashable, int] = {}  # waiting replies per conversation
        self.total = 0
        self._blocked = 0  # replies of conversations with a waiting reply

    @property
    def ready(self) -> int:
        """Unsettled replies that no waiting reply holds up."""
        return self.total - self._blocked

    def add(self, conversation: Hashable) -> None:
        self._unsettled[conversation] = self._unsettled.get(conversation, 0) + 1
        self.total += 1
        if conversation in self._waits:
            self._blocked += 1

    def settle(self, conversation: Hashable) -> None:
        left = self._unsettled[conversation] - 1
        if left:
            self._unsettled[conversation] = left
        else:
            del self._unsettled[conversation]
        self.total -= 1
        if conversation in self._waits:
            self._blocked -= 1

    def wait(self, conversation: Hashable) -> None:
        waits = self._waits.get(conversation, 0)
        if not waits:
            self._blocked += self._unsettled.get(conversation, 0)
        self._waits[conversation] = waits + 1

    def resume(self, conversation: Hashable) -> None:
        waits = self._waits.get(conversation, 0) - 1
        if waits > 0:
            self._waits[conversation] = waits
            return
        if self._waits.pop(conversation, None) is not None:
            self._blocked -= self._unsettled.get(conversation, 0)

    def clear(self) -> None:
        self._unsettled.clear()
        self._waits.clear()
        self.total = self._blocked = 0
