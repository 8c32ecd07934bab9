"""Who owns each conversation (Conversation Routing / handover, reference §3.14 and §9.7).

A thread is idle (no owner: every app gets ``messaging[]`` and may reply) or owned by one app
until released or its extension runs out; non-owners get ``standby[]`` and cannot send
(``2018300``). Pure: time is passed in as ``now``.

>>> threads = ThreadOwners()
>>> threads.owner("page", "psid", now=0.0) is None
True
>>> threads.set_owner("page", "psid", "123")
>>> threads.owner("page", "psid", now=5.0)
'123'
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EXTENSION_SECONDS = 7 * 24 * 3600.0


@dataclass
class _Ownership:
    app_id: str
    expires_at: float | None = None


class ThreadOwners:
    def __init__(self) -> None:
        self._owners: dict[tuple[str, str], _Ownership] = {}

    def owner(self, page_id: str, psid: str, *, now: float) -> str | None:
        """The owning app id, or ``None`` when the thread is idle (or its extension ended)."""
        held = self._owners.get((page_id, psid))
        if held is None:
            return None
        if held.expires_at is not None and now >= held.expires_at:
            del self._owners[(page_id, psid)]
            return None
        return held.app_id

    def expiration(self, page_id: str, psid: str) -> float | None:
        held = self._owners.get((page_id, psid))
        return held.expires_at if held is not None else None

    def set_owner(self, page_id: str, psid: str, app_id: str | None) -> None:
        if app_id is None:
            self._owners.pop((page_id, psid), None)
        else:
            self._owners[(page_id, psid)] = _Ownership(app_id)

    def extend(self, page_id: str, psid: str, seconds: float, *, now: float) -> None:
        held = self._owners.get((page_id, psid))
        if held is not None:
            held.expires_at = now + min(seconds, MAX_EXTENSION_SECONDS)

    def clear(self) -> None:
        self._owners.clear()
