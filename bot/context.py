"""What a handler receives: the event, the dependencies registered at start-up, the state.

>>> from bot.events import parse_event
>>> event = parse_event({"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 1,
...                      "message": {"mid": "m_1", "text": "hi"}}, page_id="1")
>>> ctx = Context(event, deps=Deps({"greeting": "Hello"}))
>>> f"{ctx.deps.greeting}, {ctx.psid}: {ctx.text}"
'Hello, 2: hi'
>>> ctx.deps.database  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bot.context.MissingDependencyError: no dependency 'database' (registered: greeting); ...
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from bot.events import EventKind, InboundEvent

if TYPE_CHECKING:
    from bot.state import ConversationState

T = TypeVar("T")


class MissingDependencyError(AttributeError, KeyError):
    """A handler asked for a dependency nobody registered; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        registered = ", ".join(known) or "none"
        message = (
            f"no dependency {name!r} (registered: {registered}); "
            f"add it with router.provide({name}=...)"
        )
        super().__init__(message)
        self.name = name
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class NoStateStoreError(RuntimeError):
    """``ctx.state`` was used by a router without a state store (or on an event without user)."""


class Deps(Mapping[str, Any]):
    """Read-only dependencies by name: ``ctx.deps.db`` or ``ctx.deps["db"]``.

    ``ctx.deps.get_as("db", Database)`` returns it typed (and checks the type).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise MissingDependencyError(name, sorted(self._values)) from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_as(self, name: str, kind: type[T]) -> T:
        value = self[name]
        if not isinstance(value, kind):
            raise TypeError(f"dependency {name!r} is a {type(value).__name__}, not {kind.__name__}")
        return value

    def merged(self, other: Mapping[str, Any]) -> Deps:
        """These dependencies with ``other``'s added (``other`` wins on a clash)."""
        return Deps({**self._values, **other}) if other else self


class Context:
    """The event plus shortcuts for its common fields, ``deps``, ``state`` and ``match``.

    ``match`` is the ``re.Match`` of the route's ``regex`` filter (``None`` without one).
    """

    __slots__ = ("_state", "deps", "event", "match")

    def __init__(
        self,
        event: InboundEvent,
        *,
        deps: Deps | None = None,
        state: ConversationState | None = None,
        match: re.Match[str] | None = None,
    ) -> None:
        self.event = event
        self.deps = deps if deps is not None else Deps()
        self.match = match
        self._state = state

    @property
    def state(self) -> ConversationState:
        """This conversation's state (a dict-like stored after the handler returns)."""
        if self._state is None:
            raise NoStateStoreError(
                "ctx.state needs a state store: the bot gives handlers its inbox; a router "
                "run on its own needs Router(state_store=MemoryStateStore()); events without "
                "a user have no state"
            )
        return self._state

    def group(self, group: int | str = 0) -> str:
        """A group of the route's ``regex`` match: ``ctx.group(1)`` ("" if it took no part)."""
        if self.match is None:
            raise LookupError("this route has no regex filter, so there is no match")
        return self.match.group(group) or ""

    @property
    def kind(self) -> EventKind:
        return self.event.kind

    @property
    def page_id(self) -> str:
        return self.event.page_id

    @property
    def psid(self) -> str | None:
        """The user in the conversation (the recipient for echoes)."""
        return self.event.user_id

    @property
    def text(self) -> str | None:
        return self.event.text

    @property
    def payload(self) -> str | None:
        """Postback or quick-reply payload."""
        return self.event.payload

    @property
    def mid(self) -> str | None:
        return self.event.mid

    def __repr__(self) -> str:
        return f"Context({self.event.kind.value}, psid={self.psid!r})"
