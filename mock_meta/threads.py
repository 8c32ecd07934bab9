"""Who owns each conversation (Conversation Routing / handover, reference §3.14, §7, §9.7).

A thread is idle (no owner: every app gets ``messaging[]`` and may reply) or owned by one app;
non-owners get ``standby[]`` and cannot send (``2018300``). Control lapses after 24 h without
activity, unless ``extend_thread_control`` pushed it further (up to 7 days). Pure: time is
passed in as ``now`` (platform seconds).

>>> threads = ThreadOwners()
>>> threads.set_owner("page", "psid", "123", now=0.0)
>>> threads.owner("page", "psid", now=5.0)
'123'
>>> threads.owner("page", "psid", now=24 * 3600.0) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

IDLE_AFTER_SECONDS = 24 * 3600.0
MAX_EXTENSION_SECONDS = 7 * 24 * 3600.0


@dataclass
class _Ownership:
    app_id: str
    active_at: float
    extended_until: float = 0.0

    @property
    def expires_at(self) -> float:
        return max(self.active_at + IDLE_AFTER_SECONDS, self.extended_until)


class ThreadOwners:
    def __init__(self) -> None:
        self._owners: dict[tuple[str, str], _Ownership] = {}

    def owner(self, page_id: str, psid: str, *, now: float) -> str | None:
        """The owning app id, or ``None`` when the thread is idle (or control lapsed)."""
        held = self._owners.get((page_id, psid))
        if held is None:
            return None
        if now >= held.expires_at:
            del self._owners[(page_id, psid)]
            return None
        return held.app_id

    def expiration(self, page_id: str, psid: str) -> float | None:
        held = self._owners.get((page_id, psid))
        return held.expires_at if held is not None else None

    def set_owner(self, page_id: str, psid: str, app_id: str | None, *, now: float) -> None:
        if app_id is None:
            self._owners.pop((page_id, psid), None)
        else:
            self._owners[(page_id, psid)] = _Ownership(app_id, active_at=now)

    def touch(self, page_id: str, psid: str, *, now: float) -> None:
        """Activity in the conversation restarts the 24 h inactivity clock."""
        held = self._owners.get((page_id, psid))
        if held is not None:
            held.active_at = now

    def extend(self, page_id: str, psid: str, seconds: float, *, now: float) -> None:
        held = self._owners.get((page_id, psid))
        if held is not None:
            held.extended_until = now + min(seconds, MAX_EXTENSION_SECONDS)

    def clear(self) -> None:
        self._owners.clear()
