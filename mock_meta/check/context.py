"""What every check gets: the running mock, the bot's URL and credentials, and small steps.

Each check works with fresh simulated users, so checks never see each other's traffic; the
runner resets chaos, faults, the clock and the delivery settings between checks.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from mock_meta.builders import EventBuilder, envelope
from mock_meta.check.conversation import Conversation, Turn
from mock_meta.client import MockMetaClient
from mock_meta.clock import ControllableClock
from mock_meta.journal_records import DeliveryRecord, SendRecord
from mock_meta.runtime import MockRuntime
from mock_meta.wire import serialize


@dataclass(frozen=True)
class Verdict:
    """A check's outcome: passed (True), failed (False) or skipped (None), with a detail."""

    passed: bool | None
    detail: str


@dataclass
class CheckContext:
    rt: MockRuntime
    mock: MockMetaClient
    http: httpx.AsyncClient  # raw POSTs to the bot (bad signatures and the like)
    callback_url: str
    app_secret: str
    verify_token: str
    conversation: Conversation
    reply_timeout: float = 10.0
    _run: int = field(default_factory=lambda: secrets.randbelow(10**9))
    _users: Iterator[int] = field(default_factory=itertools.count)

    async def new_user(self) -> str:
        """A user of the seeded page with a PSID never used before in this run: the mock is
        reset between checks, the bot is not, so a reused PSID could carry its old state."""
        psid = f"8{self._run:09d}{next(self._users):06d}"
        user: dict[str, Any] = await self.mock.request("POST", "/_mock/users", json={"psid": psid})
        return str(user["psid"])

    async def act(self, psid: str, action: dict[str, Any]) -> str:
        """A user action delivered through the mock; returns its action id."""
        body = {k: v for k, v in action.items() if v is not None}
        data: dict[str, Any] = await self.mock.request(
            "POST", f"/_mock/users/{psid}/actions", json=body
        )
        return str(data["action_id"])

    async def say(self, psid: str, turn: Turn) -> str:
        return await self.act(psid, turn.action)

    async def reply_to(
        self, psid: str, action_id: str, within: float | None = None
    ) -> SendRecord | None:
        result = await self.rt.journal.wait_reply(
            psid, action_id, self.reply_timeout if within is None else within
        )
        return None if result is None else result.reply

    async def delivery(self, action_id: str, within: float | None = None) -> DeliveryRecord | None:
        return await self.rt.journal.wait_delivery(
            action_id, self.reply_timeout if within is None else within
        )

    async def quiet(self, psid: str, within: float = 2.0) -> SendRecord | None:
        """None when the bot sends nothing to ``psid`` for ``within`` seconds, else the send."""
        return await self.rt.journal.wait_no_reply(psid, within)

    def messages_to(self, psid: str) -> list[SendRecord]:
        return [s for s in self.rt.journal.sends(psid=psid) if s.is_reply]

    def sends_to(self, psid: str) -> list[SendRecord]:
        return self.rt.journal.sends(psid=psid)

    async def until(self, condition: Callable[[], Any], within: float | None = None) -> Any:
        """Re-check ``condition`` every 20 ms until truthy or ``within`` seconds passed."""
        deadline = time.monotonic() + (self.reply_timeout if within is None else within)
        while True:
            result = condition()
            if result or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.02)

    def event_body(self, psid: str, text: str, *, age_seconds: float = 0.0) -> bytes:
        """A one-text webhook body for ``psid`` sent ``age_seconds`` ago, serialised as Meta
        does (the mock's world does not see it: the user's window is not opened)."""
        sent_at = ControllableClock(self.rt.clock.now() - age_seconds, frozen=True)
        built = EventBuilder(sent_at).text(self.rt.settings.page_id, psid, text)
        return serialize(envelope([built.entry(time_ms=built.timestamp_ms)]))

    async def post_raw(self, body: bytes, headers: dict[str, str]) -> int | str:
        """POST ``body`` to the bot; the HTTP status, or a short reason it failed."""
        try:
            response = await self.http.post(self.callback_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return response.status_code


def text_of(send: SendRecord | None) -> str | None:
    """The text of a Send API message (None for attachments, templates or no send)."""
    if send is None:
        return None
    message = send.request.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    return text if isinstance(text, str) else None


CheckFn = Callable[[CheckContext], Awaitable[Verdict]]
