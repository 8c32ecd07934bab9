"""One route (a handler and its filters) and the per-kind decorators that register routes.

``bot.routing.Router`` holds the routes; this module says how one matches an event.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, overload

from bot.context import Context
from bot.events import EventKind, InboundEvent
from bot.filters import Predicate
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.routing import Router

HandlerResult: TypeAlias = Reply | list[Reply] | None
Handler: TypeAlias = Callable[[Context], HandlerResult | Awaitable[HandlerResult]]
ErrorHook: TypeAlias = Callable[[Context, Exception], HandlerResult | Awaitable[HandlerResult]]
H = TypeVar("H", bound=Callable[..., Any])
Decorator: TypeAlias = Callable[[Handler], Handler]

# Kinds whose routes filter on the payload (``payload=``, ``regex=``); the others on the text.
PAYLOAD_KINDS = frozenset({EventKind.POSTBACK, EventKind.QUICK_REPLY})


def check_payload(kind: EventKind, payload: str | None) -> None:
    if payload is not None and kind not in PAYLOAD_KINDS:
        raise TypeError(f"{kind.value} events have no payload; use regex= or when=")


@dataclass(frozen=True, slots=True)
class Route:
    kind: EventKind
    handler: Handler
    payload: str | None = None  # exact payload
    pattern: re.Pattern[str] | None = None  # searched in the payload or the text
    when: Predicate | None = None

    @property
    def specific(self) -> bool:
        return self.payload is not None or self.pattern is not None or self.when is not None

    def match(self, event: InboundEvent) -> re.Match[str] | bool:
        """False, True, or the regex match (truthy) when the route takes ``event``."""
        by_payload = self.kind in PAYLOAD_KINDS
        if self.payload is not None and event.payload != self.payload:
            return False
        if self.when is not None and not self.when(event):
            return False
        if self.pattern is None:
            return True
        subject = event.payload if by_payload else event.text
        found = self.pattern.search(subject) if subject is not None else None
        return found if found is not None else False


class OnKind:
    """One row of the table of per-kind decorators: ``on_text = OnKind(EventKind.TEXT)``."""

    def __init__(self, kind: EventKind) -> None:
        self.kind = kind

    @overload
    def __get__(self, router: None, owner: type[Router]) -> OnKind: ...
    @overload
    def __get__(self, router: Router, owner: type[Router]) -> BoundOnKind: ...
    def __get__(self, router: Router | None, owner: type[Router]) -> OnKind | BoundOnKind:
        return self if router is None else BoundOnKind(router, self.kind)


class BoundOnKind:
    """``@router.on_x``, ``@router.on_x("PAYLOAD")`` or ``@router.on_x(regex=..., when=...)``."""

    __slots__ = ("kind", "router")

    def __init__(self, router: Router, kind: EventKind) -> None:
        self.router, self.kind = router, kind

    @overload
    def __call__(self, payload: H, /) -> H: ...
    @overload
    def __call__(
        self,
        payload: str | None = None,
        /,
        *,
        regex: str | re.Pattern[str] | None = None,
        when: Predicate | None = None,
    ) -> Decorator: ...
    def __call__(
        self,
        payload: str | Callable[..., Any] | None = None,
        /,
        *,
        regex: str | re.Pattern[str] | None = None,
        when: Predicate | None = None,
    ) -> Any:
        if callable(payload):  # used bare: @router.on_text
            self.router.add(self.kind, payload)
            return payload
        return self.router.on(self.kind, payload=payload, regex=regex, when=when)
