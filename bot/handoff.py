"""Hand a conversation to a live agent and take it back (Conversation Routing, reference §9.7).

>>> handoff = Handoff(PageApi(settings), agent_app_id=settings.handoff_app_id)  # doctest: +SKIP
>>> router.provide(handoff=handoff)                                              # doctest: +SKIP
>>> @router.on_postback("HUMAN")                                                 # doctest: +SKIP
... async def to_agent(ctx):
...     await ctx.deps.handoff.pass_to_agent(ctx.psid, metadata="asked for a person")
...     return Reply.text("A person will answer here shortly.")

While an agent owns the thread, the user's messages reach the bot as ``standby`` events:
route them with ``@router.on_standby(when=filters.standby_of("message"))``, and the agent
app's hand-back with ``@router.on_handover(when=thread_passed)``.

The notice a handler returns is sent after the handler, i.e. after the pass: Graph lets the
primary receiver send in a thread it passed on today, but a strict Conversation Routing setup
answers 2018300; there, send the notice first (or take the thread back to send).
"""

from __future__ import annotations

from typing import Any

from bot.filters import carries
from bot.page_api import PageApi

# Meta's Page Inbox app: the default "secondary receiver" where a Page's people answer.
PAGE_INBOX_APP_ID = "263902037430900"

__all__ = ["PAGE_INBOX_APP_ID", "Handoff", "thread_passed", "thread_requested", "thread_taken"]


class Handoff:
    """Thread-control calls for one page; each raises ``PageApiError`` when Graph refuses."""

    def __init__(self, api: PageApi, *, agent_app_id: str = PAGE_INBOX_APP_ID) -> None:
        self.api = api
        self.agent_app_id = agent_app_id

    async def pass_to_agent(
        self, psid: str, *, metadata: str = "", target_app_id: str | None = None
    ) -> None:
        """Pass the thread to the agent app (or ``target_app_id``)."""
        await self._control(
            "pass_thread_control", psid, metadata, target_app_id=target_app_id or self.agent_app_id
        )

    async def take_back(self, psid: str, *, metadata: str = "") -> None:
        """Take the thread back from whoever has it (the primary receiver may always do so)."""
        await self._control("take_thread_control", psid, metadata)

    async def release(self, psid: str, *, metadata: str = "") -> None:
        """Let go of the thread: it becomes idle."""
        await self._control("release_thread_control", psid, metadata)

    async def request(self, psid: str, *, metadata: str = "") -> None:
        """Ask the current owner to pass the thread to us."""
        await self._control("request_thread_control", psid, metadata)

    async def owner(self, psid: str) -> str | None:
        """The app id that owns the thread now, or ``None`` when it is idle."""
        answer = await self.api.call("GET", "thread_owner", params={"recipient": psid})
        for item in answer.get("data", []) if isinstance(answer, dict) else []:
            owner = item.get("thread_owner", {}).get("app_id")
            if owner is not None:
                return str(owner)
        return None

    async def _control(self, edge: str, psid: str, metadata: str, **extra: str) -> None:
        body: dict[str, Any] = {"recipient": {"id": psid}, **extra}
        if metadata:
            body["metadata"] = metadata
        await self.api.call("POST", edge, body)


# Handover webhooks go to the app they concern (reference §3.14, §9.7):
# the thread was passed to this app (e.g. the agent app passed it back),
thread_passed = carries("pass_thread_control")
# another app took the thread from this app,
thread_taken = carries("take_thread_control")
# another app asks this app (the owner) for the thread.
thread_requested = carries("request_thread_control")
