"""The bot's public handler API: register a function per event kind, get replies back.

>>> from bot.routing import Context, Reply, Router
>>> router = Router()
>>> @router.on_text
... def echo(ctx: Context) -> Reply:
...     return Reply.text(f"You said: {ctx.text}")
>>> @router.on_postback("GET_STARTED")
... async def welcome(ctx: Context) -> list[Reply]:
...     return [Reply.text("Welcome."), Reply.text("Ask me anything.")]

A user's module exposes ``router`` (a ``Router``) or ``register(router)``; the bot loads it
with ``load_router("my_package.handlers")`` (``BOT_HANDLERS_MODULE``). Handlers may be sync or
async and return a ``Reply``, a list of them or ``None``. Sync handlers run on the event loop,
so keep them quick; anything doing I/O should be ``async``. A handler that raises is retried
with back-off and finally dead-lettered by the worker pool.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, overload

from bot.events import EventKind, InboundEvent

__all__ = [
    "Context",
    "DispatchResult",
    "Handler",
    "HandlerResult",
    "Reply",
    "Router",
    "RouterLoadError",
    "load_router",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """One Send API message to the user of the conversation.

    ``message`` is the Send API ``message`` object; ``tag`` (with ``messaging_type``
    ``MESSAGE_TAG``) is only needed outside the 24-hour window.
    """

    message: dict[str, Any]
    messaging_type: str = "RESPONSE"
    tag: str | None = None

    @classmethod
    def text(cls, text: str, *, messaging_type: str = "RESPONSE", tag: str | None = None) -> Reply:
        """A plain text reply: ``Reply.text("hi")``."""
        return cls({"text": text}, messaging_type="MESSAGE_TAG" if tag else messaging_type, tag=tag)


HandlerResult: TypeAlias = Reply | list[Reply] | None
Handler: TypeAlias = Callable[["Context"], HandlerResult | Awaitable[HandlerResult]]


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler receives: the event plus shortcuts for the common fields."""

    event: InboundEvent

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


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """Whether a handler matched, and the replies it asked for (always empty for echoes)."""

    handled: bool
    replies: tuple[Reply, ...] = field(default=())


class RouterLoadError(ImportError):
    """The handlers module cannot be imported or exposes neither ``router`` nor ``register``."""

    def __init__(self, module: str, reason: str) -> None:
        super().__init__(f"handlers module {module!r}: {reason}")
        self.module = module
        self.reason = reason


@dataclass(slots=True)
class _Route:
    handler: Handler
    payload: str | None  # exact payload to match, None for any


_Decorator: TypeAlias = Callable[[Handler], Handler]


class Router:
    """Maps event kinds (and optionally payloads) to handlers; the first match wins.

    Routes with an exact payload are tried before catch-all routes of the same kind. A quick
    reply nobody registered for falls back to the text handlers, since it is a text message.
    """

    def __init__(self) -> None:
        self._routes: dict[EventKind, list[_Route]] = {}

    # --- registration ---

    def on(self, kind: EventKind, *, payload: str | None = None) -> _Decorator:
        """Register for any kind: ``@router.on(EventKind.MESSAGE_EDIT)``."""

        def decorator(handler: Handler) -> Handler:
            self.add(kind, handler, payload=payload)
            return handler

        return decorator

    def add(self, kind: EventKind, handler: Handler, *, payload: str | None = None) -> None:
        """Register ``handler`` without decorator syntax."""
        if not callable(handler):
            raise TypeError(f"handler for {kind.value} must be callable, got {handler!r}")
        self._routes.setdefault(EventKind(kind), []).append(_Route(handler, payload))

    def on_text(self, handler: Handler) -> Handler:
        self.add(EventKind.TEXT, handler)
        return handler

    def on_attachments(self, handler: Handler) -> Handler:
        self.add(EventKind.ATTACHMENTS, handler)
        return handler

    @overload
    def on_quick_reply(self, payload: Handler, /) -> Handler: ...
    @overload
    def on_quick_reply(self, payload: str | None = None, /) -> _Decorator: ...
    def on_quick_reply(self, payload: str | Handler | None = None, /) -> Handler | _Decorator:
        """``@router.on_quick_reply`` (any payload) or ``@router.on_quick_reply("PICK_RED")``."""
        return self._payload_route(EventKind.QUICK_REPLY, payload)

    @overload
    def on_postback(self, payload: Handler, /) -> Handler: ...
    @overload
    def on_postback(self, payload: str | None = None, /) -> _Decorator: ...
    def on_postback(self, payload: str | Handler | None = None, /) -> Handler | _Decorator:
        """``@router.on_postback`` (any payload) or ``@router.on_postback("GET_STARTED")``."""
        return self._payload_route(EventKind.POSTBACK, payload)

    def on_reaction(self, handler: Handler) -> Handler:
        self.add(EventKind.REACTION, handler)
        return handler

    def on_delivery(self, handler: Handler) -> Handler:
        self.add(EventKind.DELIVERY, handler)
        return handler

    def on_read(self, handler: Handler) -> Handler:
        self.add(EventKind.READ, handler)
        return handler

    def on_referral(self, handler: Handler) -> Handler:
        self.add(EventKind.REFERRAL, handler)
        return handler

    def on_optin(self, handler: Handler) -> Handler:
        self.add(EventKind.OPTIN, handler)
        return handler

    def on_handover(self, handler: Handler) -> Handler:
        self.add(EventKind.HANDOVER, handler)
        return handler

    def on_standby(self, handler: Handler) -> Handler:
        self.add(EventKind.STANDBY, handler)
        return handler

    def on_echo(self, handler: Handler) -> Handler:
        """Observe the page's own messages; whatever the handler returns is never sent."""
        self.add(EventKind.ECHO, handler)
        return handler

    def _payload_route(
        self, kind: EventKind, payload: str | Handler | None
    ) -> Handler | _Decorator:
        if callable(payload):  # used bare: @router.on_postback
            self.add(kind, payload)
            return payload
        return self.on(kind, payload=payload)

    # --- dispatch ---

    def handler_for(self, event: InboundEvent) -> Handler | None:
        """The handler that would run for ``event``, if any."""
        route = self._match(event.kind, event.payload)
        if route is None and event.kind is EventKind.QUICK_REPLY:
            route = self._match(EventKind.TEXT, None)
        return route.handler if route else None

    async def dispatch(self, event: InboundEvent) -> DispatchResult:
        """Run the matching handler; exceptions propagate to the caller (the worker)."""
        handler = self.handler_for(event)
        if handler is None:
            return DispatchResult(handled=False)
        result = handler(Context(event))
        if inspect.isawaitable(result):
            result = await result
        if event.kind is EventKind.ECHO:
            return DispatchResult(handled=True)  # never answer our own messages (loops)
        return DispatchResult(handled=True, replies=_as_replies(result, handler))

    def _match(self, kind: EventKind, payload: str | None) -> _Route | None:
        routes = self._routes.get(kind)
        if not routes:
            return None
        fallback: _Route | None = None
        for route in routes:
            if route.payload is None:
                fallback = fallback or route
            elif route.payload == payload:
                return route
        return fallback


def _as_replies(result: object, handler: Handler) -> tuple[Reply, ...]:
    if result is None:
        return ()
    if isinstance(result, Reply):
        return (result,)
    if isinstance(result, list | tuple) and all(isinstance(r, Reply) for r in result):
        return tuple(result)
    name = getattr(handler, "__qualname__", repr(handler))
    got = type(result).__name__
    raise TypeError(f"handler {name} returned {got}; expected a Reply, a list of them or None")


def load_router(module_path: str) -> Router:
    """Import ``module_path`` and return its ``router``, or a new Router passed to ``register``."""
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise RouterLoadError(module_path, f"cannot be imported ({exc})") from exc
    router = getattr(module, "router", None)
    if isinstance(router, Router):
        return router
    register = getattr(module, "register", None)
    if callable(register):
        router = Router()
        register(router)
        return router
    if router is not None:
        raise RouterLoadError(module_path, f"`router` is a {type(router).__name__}, not a Router")
    raise RouterLoadError(module_path, "exposes neither `router` (a Router) nor `register(router)`")
