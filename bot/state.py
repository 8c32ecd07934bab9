"""Per-conversation state for handlers: ``ctx.state["step"] = "email"``.

The router loads a conversation's state before its handler runs. Stores implement
:class:`StateStore`: every inbox backend is one (``bot.inbox``), and this module has a
plain in-memory one for router tests.

The bot's engine gives handlers its inbox as their store and commits a handler's new state
in the SAME write as its replies and the event's done mark (``Inbox.commit_handled``): a
handler that fails leaves no state behind, and a retried event never sees state advanced by
an attempt whose replies were not committed. A store a handlers module sets itself
(``router.state_store``) is saved by the router when the handler returns, before the replies
are committed: only the inbox store is atomic with the replies.

A conversation's events run one at a time (the engine orders them per sender), so a
load-modify-save never races another for the same user.

>>> state = ConversationState({"step": "name"})
>>> state["step"] = "email"
>>> state.changed, state.as_dict()
(True, {'step': 'email'})
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol


class StateError(ValueError):
    """A state value cannot be stored (it is not JSON)."""


class StateStore(Protocol):
    """Where conversations' state lives, keyed by (page id, PSID); values are JSON objects."""

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        """The saved state, or ``{}``."""
        ...

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        """Replace the state; an empty ``data`` deletes it (``StateError`` if not JSON)."""
        ...


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A conversation's new state, as a dispatch left it (``DispatchResult.state``)."""

    page_id: str
    psid: str
    data: dict[str, Any]


class ConversationState(MutableMapping[str, Any]):
    """A dict of JSON values that knows whether a handler changed it."""

    __slots__ = ("_data", "_original")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._original = copy.deepcopy(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def changed(self) -> bool:
        """True when the contents differ from what was loaded (nested changes included)."""
        return self._data != self._original

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        return f"ConversationState({self._data!r})"


def encode_state(data: Mapping[str, Any]) -> str:
    """JSON text of ``data``, or a StateError naming the value that is not JSON."""
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateError(f"conversation state must be JSON: {exc}") from exc


class MemoryStateStore:
    """``StateStore`` in a dict (router tests; ``bot.inbox_memory`` keeps its state here)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], str] = {}

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        raw = self._rows.get((page_id, psid))
        return json.loads(raw) if raw is not None else {}

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        self.put(StateUpdate(page_id, psid, data))

    def put(self, update: StateUpdate) -> None:
        """``save`` without awaiting (for a caller applying it inside its own write)."""
        encoded = encode_state(update.data)  # stored as JSON like the durable stores
        key = (update.page_id, update.psid)
        if update.data:
            self._rows[key] = encoded
        else:
            self._rows.pop(key, None)
