"""Per-conversation state for handlers: ``ctx.state["step"] = "email"``.

The router loads a conversation's state before its handler runs and saves it afterwards
when the handler changed it. Stores implement :class:`StateStore`: this module has the
in-memory one, :mod:`bot.state_sqlite` the durable one.

A conversation's events run one at a time (the worker pool orders them per sender), so a
load-modify-save never races another for the same user. The save happens when the handler
returns, before its replies are sent; ``Router(save_state=False)`` leaves it to the caller
(``DispatchResult.state``), which can commit it in one transaction with the replies.

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
        """Replace the state; an empty ``data`` deletes it."""
        ...

    async def aclose(self) -> None: ...


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
    """``StateStore`` in a dict (tests, single-process bots that may forget on restart)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], str] = {}

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        raw = self._rows.get((page_id, psid))
        return json.loads(raw) if raw is not None else {}

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        encoded = encode_state(data)  # stored as JSON so it behaves like the durable stores
        if data:
            self._rows[(page_id, psid)] = encoded
        else:
            self._rows.pop((page_id, psid), None)

    async def aclose(self) -> None:
        self._rows.clear()
