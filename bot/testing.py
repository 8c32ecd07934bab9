"""Test helpers for bots built on this package (public API, like ``structlog.testing``).

>>> import asyncio
>>> from bot.routing import Reply, Router
>>> router = Router()
>>> _ = router.on_text(lambda ctx: Reply.text(f"You said: {ctx.text}"))
>>> replies = asyncio.run(RouterClient(router).text("hi"))
>>> texts(replies)
['You said: hi']

* :class:`RouterClient` runs a router against an event and returns the replies;
* :class:`RecordingSendApi` is a ``SendApi`` that records each call (and can fail chosen ones);
* :func:`text_item`, :func:`postback_item`... build ``messaging[]`` objects, and
  :func:`signed_envelope` wraps them in a webhook body with a valid signature;
* :class:`RecordingHandoff` stands in for :class:`bot.handoff.Handoff` in ``ctx.deps``;
* :func:`make_settings` builds ``BotSettings`` for tests without touching the environment.

The defaults are the mock platform's seed (``docs/architecture.md``), so the same values work
against ``mock_meta``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.events import InboundEvent, parse_event
from bot.handoff import PAGE_INBOX_APP_ID, Handoff
from bot.reply import Reply
from bot.routing import DispatchResult, Router
from bot.send_api import SendResult
from bot.settings import BotSettings
from bot.signature import signature_for

__all__ = [
    "APP_SECRET",
    "PAGE_ID",
    "PAGE_TOKEN",
    "PSID",
    "VERIFY_TOKEN",
    "RecordingHandoff",
    "RecordingSendApi",
    "RouterClient",
    "SentCall",
    "event_of",
    "make_settings",
    "messaging_item",
    "postback_item",
    "quick_reply_item",
    "signed_envelope",
    "text_item",
    "texts",
]

APP_SECRET = "test_app_secret"
VERIFY_TOKEN = "test_verify_token"
PAGE_TOKEN = "test_page_token"
PAGE_ID = "104501234567890"
PSID = "6543210987654321"

_mids = itertools.count(1)


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- settings ---


def make_settings(**overrides: Any) -> BotSettings:
    """``BotSettings`` with the seed's credentials; ``overrides`` by field name or env alias.

    >>> make_settings(ordering_window_ms=0).ordering_window_ms
    0
    """
    values: dict[str, Any] = {
        "MESSENGER_VERIFY_TOKEN": VERIFY_TOKEN,
        "MESSENGER_APP_SECRET": APP_SECRET,
        "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "MESSENGER_PAGE_ID": PAGE_ID,
        "INBOX_SYNCHRONOUS": "NORMAL",
        "ORDERING_WINDOW_MS": 0,
    }
    aliases = {name: info.alias for name, info in BotSettings.model_fields.items() if info.alias}
    for key, value in overrides.items():
        values[aliases.get(key, key)] = value
    return BotSettings(**values)


# --- events and envelopes ---


def messaging_item(
    *, psid: str = PSID, page_id: str = PAGE_ID, timestamp_ms: int | None = None, **fields: Any
) -> dict[str, Any]:
    """A ``messaging[]`` object from ``psid`` to the page with any ``fields``.

    >>> messaging_item(read={"watermark": 5}, timestamp_ms=1)["read"]
    {'watermark': 5}
    """
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": _now_ms() if timestamp_ms is None else timestamp_ms,
        **fields,
    }


def text_item(
    text: str,
    *,
    psid: str = PSID,
    page_id: str = PAGE_ID,
    mid: str | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """A ``messaging[]`` text message from ``psid`` (stamped now: the window is open)."""
    message = {"mid": mid or f"m_test_{next(_mids)}", "text": text}
    return messaging_item(psid=psid, page_id=page_id, timestamp_ms=timestamp_ms, message=message)


def quick_reply_item(
    text: str, payload: str, *, psid: str = PSID, page_id: str = PAGE_ID, mid: str | None = None
) -> dict[str, Any]:
    """A quick-reply tap: the chip's ``text`` with its ``payload``."""
    message = {
        "mid": mid or f"m_test_{next(_mids)}",
        "text": text,
        "quick_reply": {"payload": payload},
    }
    return messaging_item(psid=psid, page_id=page_id, message=message)


def postback_item(
    payload: str, *, title: str = "", psid: str = PSID, page_id: str = PAGE_ID
) -> dict[str, Any]:
    """A button tap (``messaging_postbacks``)."""
    postback = {"mid": f"m_test_{next(_mids)}", "title": title or payload, "payload": payload}
    return messaging_item(psid=psid, page_id=page_id, postback=postback)


def event_of(
    item: dict[str, Any], *, page_id: str = PAGE_ID, standby: bool = False
) -> InboundEvent:
    """The parsed event the workers would hand the router for ``item``."""
    return parse_event(item, page_id=page_id, standby=standby)


def signed_envelope(
    items: Iterable[dict[str, Any]],
    *,
    secret: str = APP_SECRET,
    page_id: str = PAGE_ID,
    standby: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a webhook POST carrying ``items``, signed like Meta signs.

    The body is Meta-style ASCII JSON (``\\uXXXX``, ``\\/``), one entry per item.
    """
    channel = "standby" if standby else "messaging"
    entries = [{"id": page_id, "time": _now_ms(), channel: [item]} for item in items]
    body = json.dumps({"object": "page", "entry": entries}).replace("/", "\\/").encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature_for(body, secret),
    }
    return body, headers


# --- the router test client ---


class RouterClient:
    """Runs ``router`` against one event at a time, as one user, and returns its replies.

    >>> router = Router()
    >>> _ = router.on_postback("GET_STARTED")(lambda ctx: Reply.text("Welcome"))
    >>> client = RouterClient(router, psid="42")
    >>> asyncio.run(client.postback("GET_STARTED"))  # in an async test: await client.postback(...)
    (Reply(message={'text': 'Welcome'}, ...),)
    """

    def __init__(self, router: Router, *, psid: str = PSID, page_id: str = PAGE_ID) -> None:
        self.router = router
        self.psid = psid
        self.page_id = page_id
        self.last: DispatchResult | None = None

    async def text(self, text: str) -> tuple[Reply, ...]:
        return await self.item(text_item(text, psid=self.psid, page_id=self.page_id))

    async def quick_reply(self, text: str, payload: str) -> tuple[Reply, ...]:
        return await self.item(
            quick_reply_item(text, payload, psid=self.psid, page_id=self.page_id)
        )

    async def postback(self, payload: str, *, title: str = "") -> tuple[Reply, ...]:
        return await self.item(
            postback_item(payload, title=title, psid=self.psid, page_id=self.page_id)
        )

    async def item(self, item: dict[str, Any], *, standby: bool = False) -> tuple[Reply, ...]:
        """Any ``messaging[]`` (or ``standby[]``) object."""
        return await self.dispatch(event_of(item, page_id=self.page_id, standby=standby))

    async def dispatch(self, event: InboundEvent) -> tuple[Reply, ...]:
        self.last = await self.router.dispatch(event)
        return self.last.replies


def texts(replies: Sequence[Reply]) -> list[str | None]:
    """The ``text`` of each reply (``None`` for templates, attachments and sender actions)."""
    return [reply.message.get("text") for reply in replies]


# --- the recording Send API ---


@dataclass(frozen=True, slots=True)
class SentCall:
    """One ``SendApi.send`` call as the recorder saw it."""

    page_id: str
    psid: str
    message: dict[str, Any]
    messaging_type: str = "RESPONSE"
    tag: str | None = None
    options: tuple[tuple[str, Any], ...] = ()  # later keywords (sender_action, persona_id...)

    @property
    def text(self) -> str | None:
        value = self.message.get("text")
        return value if isinstance(value, str) else None


Answer = Callable[[SentCall], Awaitable[SendResult | None]]


class RecordingSendApi:
    """A ``SendApi`` that records each call and answers ok, or what ``answer`` returns.

    ``answer(call)`` may return a failed ``SendResult`` (the call is then not counted in
    ``sent``), a successful one (counted, and returned as is), ``None`` for the default
    success, or raise. ``calls`` has every attempt.
    """

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer
        self.calls: list[SentCall] = []
        self.sent: list[SentCall] = []
        self._changed = asyncio.Condition()

    async def send(
        self,
        page_id: str,
        psid: str,
        message: dict[str, Any],
        *,
        messaging_type: str = "RESPONSE",
        tag: str | None = None,
        **options: Any,
    ) -> SendResult:
        call = SentCall(page_id, psid, message, messaging_type, tag, tuple(sorted(options.items())))
        self.calls.append(call)
        result = await self.answer(call) if self.answer is not None else None
        if result is None or result.ok:
            self.sent.append(call)
        if result is None:
            result = SendResult(ok=True, message_id=f"m_reply_{len(self.sent)}")
        async with self._changed:
            self._changed.notify_all()
        return result

    @property
    def texts(self) -> list[str | None]:
        return [call.text for call in self.sent]

    @property
    def metadata(self) -> list[str | None]:
        """The ``message.metadata`` of each successful send (``None`` where it had none)."""
        return [call.message.get("metadata") for call in self.sent]

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[SentCall]:
        """Wait until ``count`` sends succeeded (TimeoutError after ``within`` seconds)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.sent) >= count)
        return self.sent[:count]

    async def aclose(self) -> None:
        pass


# --- the recording handoff ---


class RecordingHandoff(Handoff):
    """A ``Handoff`` that records thread-control calls and tracks the owner, without Graph.

    >>> handoff = RecordingHandoff()
    >>> asyncio.run(handoff.pass_to_agent("42"))
    >>> handoff.calls, asyncio.run(handoff.owner("42"))
    ([('pass_thread_control', '42')], '263902037430900')
    """

    def __init__(self, *, agent_app_id: str = PAGE_INBOX_APP_ID, app_id: str = "me") -> None:
        self.agent_app_id = agent_app_id
        self.app_id = app_id
        self.calls: list[tuple[str, str]] = []
        self._owners: dict[str, str | None] = {}

    async def owner(self, psid: str) -> str | None:
        return self._owners.get(psid)

    async def _control(self, edge: str, psid: str, metadata: str, **extra: str) -> None:
        self.calls.append((edge, psid))
        if edge == "pass_thread_control":
            self._owners[psid] = extra.get("target_app_id", self.agent_app_id)
        elif edge == "take_thread_control":
            self._owners[psid] = self.app_id
        elif edge == "release_thread_control":
            self._owners[psid] = None
