"""The bot's public handler API: register a function per event kind, get replies back.

>>> from bot.routing import Context, Reply, Router
>>> router = Router()
>>> @router.on_text
... def echo(ctx: Context) -> Reply:
...     return Reply.text(f"You said: {ctx.text}")
>>> @router.on_postback("GET_STARTED")
... async def welcome(ctx: Context) -> list[Reply]:
...     return [Reply.text("Welcome."), Reply.text("Ask me anything.")]
>>> @router.on_text(regex=r"^order (\\d+)$")
... async def order(ctx: Context) -> Reply:
...     return Reply.text(await ctx.deps.orders.status(ctx.group(1)))

A user's module exposes ``router`` (a ``Router``) or ``register(router)``; the bot loads it
with ``load_router("my_package.handlers")`` (``BOT_HANDLERS_MODULE``). Handlers may be sync or
async and return a ``Reply``, a list of them or ``None``. Sync handlers run on the event loop,
so keep them quick; anything doing I/O should be ``async``. A handler that raises is retried
with back-off and finally dead-lettered by the worker pool, unless an ``on_error`` hook
answers instead.

**Dependencies** are registered once at start-up with ``router.provide(orders=client)`` and
read as ``ctx.deps.orders``. We chose one ``ctx.deps`` over injection by parameter name: every
handler keeps the one signature ``(ctx)``, so lambdas, the test client and mypy all work
unchanged, nothing inspects signatures per event, and a missing dependency fails with an error
listing the registered names.

**Matching**: routes with a filter (``payload``, ``regex``, ``when``) are tried before
catch-all routes, across included routers (parents before children, in registration order);
the first match wins. A quick reply nobody registered for falls back to the text handlers,
since it is a text message.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot.context import Context, Deps
from bot.events import EventKind, InboundEvent
from bot.filters import Predicate
from bot.reply import Reply
from bot.routes import (
    Decorator,
    ErrorHook,
    H,
    Handler,
    HandlerResult,
    OnKind,
    Route,
    check_payload,
)
from bot.settings import BotSettings
from bot.state import ConversationState, StateStore, StateUpdate

__all__ = [
    "Context",
    "DispatchResult",
    "ErrorHook",
    "Handler",
    "HandlerResult",
    "Reply",
    "Router",
    "RouterLoadError",
    "load_router",
]


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """Whether a handler matched, and the replies it asked for (always empty for echoes).

    ``state`` is the conversation's new state when the handler changed it and the caller
    stores it: state from the caller's ``dispatch(state_store=...)``, or from any store of a
    router built with ``save_state=False``. State the router saved itself is not repeated.
    """

    handled: bool
    replies: tuple[Reply, ...] = field(default=())
    state: StateUpdate | None = None


class RouterLoadError(ImportError):
    """The handlers module cannot be imported or exposes neither ``router`` nor ``register``."""

    def __init__(self, module: str, reason: str) -> None:
        super().__init__(f"handlers module {module!r}: {reason}")
        self.module = module
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A route with what its place in the router tree gives it (worked out once, not per event)."""

    route: Route
    deps: Deps
    store: StateStore | None
    error_hook: ErrorHook | None
    catch_all: bool


class Router:
    """Maps event kinds (and filters) to handlers; routers compose with ``include_router``.

    ``deps`` and ``router.provide(...)`` register dependencies; ``state_store`` gives
    handlers ``ctx.state``, saved by the router when the handler returns. With
    ``save_state=False`` the router only reports the new state in ``DispatchResult.state``
    (for a caller that commits it together with the replies).
    """

    # The table of event kinds with a decorator each.
    on_text = OnKind(EventKind.TEXT)
    on_attachments = OnKind(EventKind.ATTACHMENTS)
    on_quick_reply = OnKind(EventKind.QUICK_REPLY)
    on_postback = OnKind(EventKind.POSTBACK)
    on_reaction = OnKind(EventKind.REACTION)
    on_delivery = OnKind(EventKind.DELIVERY)
    on_read = OnKind(EventKind.READ)
    on_referral = OnKind(EventKind.REFERRAL)
    on_optin = OnKind(EventKind.OPTIN)
    on_handover = OnKind(EventKind.HANDOVER)
    on_standby = OnKind(EventKind.STANDBY)
    on_message_edit = OnKind(EventKind.MESSAGE_EDIT)
    # Observes the page's own messages; whatever the handler returns is never sent.
    on_echo = OnKind(EventKind.ECHO)

    # Bumped by every registration in any router: cached dispatch plans are then stale.
    _edits: ClassVar[int] = 0

    def __init__(
        self,
        *,
        name: str = "",
        deps: Mapping[str, Any] | None = None,
        state_store: StateStore | None = None,
        save_state: bool = True,
    ) -> None:
        self.name = name
        self._routes: dict[EventKind, list[Route]] = {}
        self._children: list[Router] = []
        self._deps: dict[str, Any] = dict(deps or {})
        self._error_hook: ErrorHook | None = None
        self._state_store = state_store
        self._save_state = save_state
        self._shutdown: list[Callable[[], Awaitable[None]]] = []
        self._plans: dict[EventKind, tuple[_Candidate, ...]] = {}
        self._plans_at = -1

    @property
    def state_store(self) -> StateStore | None:
        return self._state_store

    @state_store.setter
    def state_store(self, store: StateStore | None) -> None:
        self._state_store = store
        Router._edits += 1

    # --- registration ---

    def on(
        self,
        kind: EventKind,
        *,
        payload: str | None = None,
        regex: str | re.Pattern[str] | None = None,
        when: Predicate | None = None,
    ) -> Decorator:
        """Register for any kind: ``@router.on(EventKind.GAME_PLAY, when=...)``."""
        check_payload(EventKind(kind), payload)

        def decorator(handler: Handler) -> Handler:
            self.add(kind, handler, payload=payload, regex=regex, when=when)
            return handler

        return decorator

    def add(
        self,
        kind: EventKind,
        handler: Handler,
        *,
        payload: str | None = None,
        regex: str | re.Pattern[str] | None = None,
        when: Predicate | None = None,
    ) -> None:
        """Register ``handler`` without decorator syntax."""
        kind = EventKind(kind)
        if not callable(handler):
            raise TypeError(f"handler for {kind.value} must be callable, got {handler!r}")
        check_payload(kind, payload)
        pattern = re.compile(regex) if isinstance(regex, str) else regex
        self._routes.setdefault(kind, []).append(Route(kind, handler, payload, pattern, when))
        Router._edits += 1

    def on_error(self, hook: H) -> H:
        """``hook(ctx, exc)`` runs when a handler of this router (or its children) raises.

        Its replies are sent instead and the event counts as handled; a hook that re-raises
        leaves the failure to the worker pool (retries, then the dead-letter list).
        """
        self._error_hook = hook
        Router._edits += 1
        return hook

    def provide(self, **deps: Any) -> None:
        """Register dependencies for ``ctx.deps`` (routers included later see them too)."""
        self._deps.update(deps)
        Router._edits += 1

    def on_shutdown(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run ``close()`` when the bot stops (after the last event), e.g. ``api.aclose``."""
        self._shutdown.append(close)

    async def aclose(self) -> None:
        """Run every shutdown callback of this router and its children, newest first."""
        for router in reversed(list(self._walk())):
            while router._shutdown:
                await router._shutdown.pop()()

    def include_router(self, child: Router) -> Router:
        """Add ``child``'s routes behind this router's; returns ``child``."""
        if child is self or self in child._walk():
            raise ValueError("including this router would create a cycle")
        self._children.append(child)
        Router._edits += 1
        return child

    # --- dispatch ---

    def handler_for(self, event: InboundEvent) -> Handler | None:
        """The handler that would run for ``event``, if any."""
        found = self._find(event)
        return found[0].route.handler if found else None

    async def dispatch(
        self, event: InboundEvent, *, state_store: StateStore | None = None
    ) -> DispatchResult:
        """Run the matching handler; exceptions propagate to the caller (the engine).

        ``state_store`` is the caller's store for routes without one of their own: their
        state is loaded from it, never saved here, and reported in ``DispatchResult.state``
        (the engine passes its inbox and commits the state with the replies).
        """
        found = self._find(event)
        if found is None:
            return DispatchResult(handled=False)
        candidate, match = found
        store = candidate.store if candidate.store is not None else state_store
        psid = event.user_id
        saves = self._save_state and candidate.store is not None
        state = None
        if store is not None and psid and event.kind is not EventKind.ECHO:
            state = ConversationState(await store.load(event.page_id, psid))
        ctx = Context(event, deps=candidate.deps, state=state, match=match)
        try:
            result = candidate.route.handler(ctx)
            if inspect.isawaitable(result):  # inline, not via _call: this is the hot path
                result = await result
        except Exception as exc:
            if candidate.error_hook is None:
                raise
            result = await _call(candidate.error_hook, ctx, exc)
            state = None  # a failed handler's half-made changes are not kept
        if event.kind is EventKind.ECHO:
            return DispatchResult(handled=True)  # never answer our own messages (loops)
        replies = _as_replies(result, candidate.route.handler)
        update = None
        if state is not None and store is not None and psid and state.changed:
            update = StateUpdate(event.page_id, psid, state.as_dict())
            if saves:
                await store.save(update.page_id, update.psid, update.data)
                update = None
        return DispatchResult(handled=True, replies=replies, state=update)

    def _find(self, event: InboundEvent) -> tuple[_Candidate, re.Match[str] | None] | None:
        for candidate in self._plan(event.kind):
            if candidate.catch_all:
                return candidate, None
            matched = candidate.route.match(event)
            if matched:
                return candidate, matched if isinstance(matched, re.Match) else None
        return None

    def _plan(self, kind: EventKind) -> tuple[_Candidate, ...]:
        """The routes an event of ``kind`` may take, in the order they are tried."""
        if self._plans_at != Router._edits:
            self._plans.clear()
            self._plans_at = Router._edits
        plan = self._plans.get(kind)
        if plan is None:
            plan = self._plans[kind] = tuple(self._candidates(kind))
        return plan

    def _candidates(self, kind: EventKind) -> Iterator[_Candidate]:
        kinds = [kind, EventKind.TEXT] if kind is EventKind.QUICK_REPLY else [kind]
        for each in kinds:
            for specific in (True, False):
                for path in self._paths():
                    for route in path[-1]._routes.get(each, ()):
                        if route.specific is specific:
                            yield _candidate(route, path)

    def _paths(self, prefix: tuple[Router, ...] = ()) -> Iterator[tuple[Router, ...]]:
        path = (*prefix, self)
        yield path
        for child in self._children:
            yield from child._paths(path)

    def _walk(self) -> Iterator[Router]:
        for path in self._paths():
            yield path[-1]

    def __repr__(self) -> str:
        count = sum(len(r) for r in self._routes.values())
        return f"Router({self.name or 'unnamed'}, {count} routes, {len(self._children)} children)"


def _candidate(route: Route, path: tuple[Router, ...]) -> _Candidate:
    deps = Deps()
    for router in path:
        deps = deps.merged(router._deps)
    store = next((r.state_store for r in path if r.state_store is not None), None)
    hook = next((r._error_hook for r in reversed(path) if r._error_hook), None)
    return _Candidate(route, deps, store, hook, catch_all=not route.specific)


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


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


def load_router(module_path: str, *, settings: BotSettings | None = None) -> Router:
    """Import ``module_path`` and return its ``router``, or a new Router passed to ``register``.

    ``register(router)`` or ``register(router, settings)``: the second form gets the bot's
    settings to build dependencies from (``router.provide(api=PageApi(settings))``).
    """
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise RouterLoadError(module_path, f"cannot be imported ({exc})") from exc
    router = getattr(module, "router", None)
    if isinstance(router, Router):
        return router
    register = getattr(module, "register", None)
    if callable(register):
        router = Router(name=module_path)
        if _positional_parameters(register) >= 2:
            if settings is None:
                raise RouterLoadError(module_path, "register(router, settings) needs settings")
            register(router, settings)
        else:
            register(router)
        return router
    if router is not None:
        raise RouterLoadError(module_path, f"`router` is a {type(router).__name__}, not a Router")
    raise RouterLoadError(module_path, "exposes neither `router` (a Router) nor `register(router)`")


def _positional_parameters(function: Callable[..., Any]) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = inspect.signature(function).parameters.values()
    return sum(1 for p in parameters if p.kind in kinds)
