"""Predicate filters for routes: plain functions of the event, composable with ``& | ~``.

>>> from bot.events import parse_event
>>> event = parse_event({"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 1,
...     "message": {"mid": "m", "attachments": [{"type": "image", "payload": {}}]}}, page_id="1")
>>> (attachment_type("image") & ~from_users("7"))(event)
True

Use one as ``@router.on_attachments(when=attachment_type("image"))``; any callable taking an
:class:`~bot.events.InboundEvent` and returning a bool works too. Filters see the event only
(not the state), so matching stays cheap and free of I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from bot.events import InboundEvent

Predicate: TypeAlias = Callable[[InboundEvent], bool]


class Filter:
    """A predicate that composes: ``f & g``, ``f | g``, ``~f``."""

    __slots__ = ("_predicate",)

    def __init__(self, predicate: Predicate) -> None:
        self._predicate = predicate

    def __call__(self, event: InboundEvent) -> bool:
        return bool(self._predicate(event))

    def __and__(self, other: Predicate) -> Filter:
        return Filter(lambda event: self(event) and bool(other(event)))

    def __or__(self, other: Predicate) -> Filter:
        return Filter(lambda event: self(event) or bool(other(event)))

    def __invert__(self) -> Filter:
        return Filter(lambda event: not self(event))


def attachment_type(*types: str) -> Filter:
    """A message whose attachments include one of ``types`` (image, video, audio, file...)."""
    wanted = frozenset(types)

    def check(event: InboundEvent) -> bool:
        items = event.message.get("attachments")
        return isinstance(items, list) and any(
            isinstance(item, dict) and item.get("type") in wanted for item in items
        )

    return Filter(check)


def from_users(*psids: str) -> Filter:
    """Events of these users (e.g. testers) only."""
    wanted = frozenset(psids)
    return Filter(lambda event: event.user_id in wanted)


def text_in(*texts: str, case_sensitive: bool = False) -> Filter:
    """A text equal to one of ``texts`` (ignoring surrounding blanks, and case by default)."""

    def norm(value: str) -> str:
        value = value.strip()
        return value if case_sensitive else value.casefold()

    wanted = frozenset(norm(t) for t in texts)
    return Filter(lambda event: event.text is not None and norm(event.text) in wanted)


def carries(*keys: str) -> Filter:
    """An event whose object has one of ``keys`` (``take_thread_control``, ``message``...)."""
    return Filter(lambda event: any(key in event.raw for key in keys))


def standby_of(*keys: str) -> Filter:
    """A standby event carrying one of ``keys`` (``message``, ``postback``, ``read``...)."""
    return Filter(lambda event: event.standby) & carries(*keys)
