"""Run an example bot against the mock platform, in one process, with one command.

    python -m examples faq|lead|handoff            # play the example's scripted chat
    python -m examples faq --serve                 # keep both running; chat via mock-meta

Starts ``mock_meta`` and the bot on free loopback ports, subscribes the bot's webhook through
the mock's Graph API (which runs the verification handshake), applies
``examples/profile.yaml`` (Get Started, greeting, ice breakers, persistent menu), then plays
the chat: each user action goes through the mock, and what the bot sent back is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from bot.app import create_app
from bot.page_api import PageApi
from bot.profile import apply_profile, load_profile
from bot.routing import load_router
from bot.testing import APP_SECRET, PAGE_ID, PSID, VERIFY_TOKEN, make_settings
from mock_meta.client import Action, MockMetaClient
from mock_meta.settings import MockSettings
from mock_meta.testing import LoopbackServer, MockMetaServer

EXAMPLES = {
    "faq": "examples.faq_bot",
    "lead": "examples.lead_capture_bot",
    "handoff": "examples.handoff_bot",
}
PROFILE = Path(__file__).with_name("profile.yaml")
REPLY_TIMEOUT_SECONDS = 20.0


@dataclass
class Chat:
    """One user talking to the running example; each method returns what the bot sent."""

    mock: MockMetaClient
    mock_url: str
    registry: CollectorRegistry
    settled: Callable[[], Awaitable[None]]  # the bot's engine: every reply sent or settled
    psid: str = PSID

    async def tap(self, payload: str, title: str = "") -> list[dict[str, Any]]:
        """A button, menu item or ice breaker (a postback)."""
        user = self.mock.user(self.psid)
        return await self._exchange("postback", lambda: user.tap_postback(payload, title or None))

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self._exchange("text", lambda: self.mock.user(self.psid).send_text(text))

    async def choose(self, title: str, payload: str) -> list[dict[str, Any]]:
        """A quick-reply chip."""
        user = self.mock.user(self.psid)
        return await self._exchange("quick_reply", lambda: user.tap_quick_reply(title, payload))

    async def say_while_agents_have_it(self, text: str) -> list[dict[str, Any]]:
        """A message while another app owns the thread: a ``standby`` event for the bot."""
        user = self.mock.user(self.psid)
        return await self._exchange("standby", lambda: user.act("standby_text", text=text))

    async def agents_pass_it_back(self) -> list[dict[str, Any]]:
        user = self.mock.user(self.psid)
        return await self._exchange("handover", lambda: user.act("handover", mode="pass"))

    async def _exchange(
        self, kind: str, act: Callable[[], Awaitable[Action]]
    ) -> list[dict[str, Any]]:
        """Run ``act`` and wait until the bot finished that event: all its sends are made."""
        before = len(await self.mock.journal("sends", psid=self.psid))
        done = self._processed(kind)
        await act()
        deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
        while self._processed(kind) <= done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot did not finish the {kind} event in time")
            await asyncio.sleep(0.01)
        # Handled means the replies are committed; the outbox sends them just after.
        await asyncio.wait_for(self.settled(), max(0.0, deadline - time.monotonic()))
        sends = await self.mock.journal("sends", psid=self.psid)
        return [send["request"] for send in sends[before:] if send["error_code"] is None]

    def _processed(self, kind: str) -> float:
        total = 0.0
        for family in self.registry.collect():
            if family.name == "bot_events_processed":
                total += sum(s.value for s in family.samples if s.labels.get("event_type") == kind)
        return total


@contextlib.asynccontextmanager
async def running(
    name: str, *, workdir: Path, deps: dict[str, Any] | None = None
) -> AsyncIterator[Chat]:
    """The mock and the example bot, wired like production; ``deps`` replace dependencies."""
    async with MockMetaServer(MockSettings(port=0)) as mock_server:
        settings = make_settings(
            graph_api_base=mock_server.base_url,
            inbox_path=workdir / "inbox.db",
        )
        router = load_router(EXAMPLES[name], settings=settings)
        if deps:
            router.provide(**deps)
        registry = CollectorRegistry()
        bot_app = create_app(settings, router=router, registry=registry)
        async with LoopbackServer(bot_app) as bot_server:
            await _subscribe(mock_server.base_url, f"{bot_server.base_url}/webhook")
            async with PageApi(settings) as page_api:
                await apply_profile(page_api, load_profile(PROFILE))
            async with MockMetaClient(mock_server.base_url) as mock:
                yield Chat(mock, mock_server.base_url, registry, bot_app.state.pool.join)


async def _subscribe(graph: str, callback_url: str) -> None:
    """What a bot's operator does once: the app's webhook, then the page's subscription."""
    app_id = MockSettings().app_id
    async with httpx.AsyncClient(base_url=f"{graph}/v25.0") as client:
        answer = await client.post(
            f"/{app_id}/subscriptions",
            data={
                "object": "page",
                "callback_url": callback_url,
                "verify_token": VERIFY_TOKEN,
                "fields": "messages,messaging_postbacks,messaging_handovers,standby",
                "access_token": f"{app_id}|{APP_SECRET}",
            },
        )
        answer.raise_for_status()


Step = tuple[str, Callable[[Chat], Awaitable[list[dict[str, Any]]]]]
# Each example's demo: (what the user does, doing it).
SCRIPTS: dict[str, list[Step]] = {
    "faq": [
        ("taps Get Started", lambda chat: chat.tap("GET_STARTED", "Get Started")),
        ("picks Delivery", lambda chat: chat.choose("Delivery", "FAQ_DELIVERY")),
        ("When are you open?", lambda chat: chat.say("When are you open?")),
        ("Do you sell kittens?", lambda chat: chat.say("Do you sell kittens?")),
    ],
    "lead": [
        ("taps Get a quote (menu)", lambda chat: chat.tap("LEAD_START", "Get a quote")),
        ("Ada", lambda chat: chat.say("Ada")),
        ("ada at example", lambda chat: chat.say("ada at example")),
        ("taps ada@example.com", lambda chat: chat.choose("ada@example.com", "ada@example.com")),
        ("+44 20 7946 0958", lambda chat: chat.say("+44 20 7946 0958")),
    ],
    "handoff": [
        ("hello", lambda chat: chat.say("hello")),
        ("human", lambda chat: chat.say("human")),
        ("bot (while agents have the thread)", lambda chat: chat.say_while_agents_have_it("bot")),
        ("human", lambda chat: chat.say("human")),
        ("(agents pass the thread back)", lambda chat: chat.agents_pass_it_back()),
    ],
}


def describe(request: dict[str, Any]) -> str:
    """One line for a Send API request: the text, chips, template or sender action."""
    if "sender_action" in request:
        return f"({request['sender_action']})"
    message = request.get("message", {})
    line = message.get("text") or f"[{message.get('attachment', {}).get('type', 'message')}]"
    chips = [q.get("title") or q.get("content_type") for q in message.get("quick_replies", [])]
    return f"{line}  {chips}" if chips else line


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__.splitlines()[0])
    parser.add_argument("example", choices=sorted(EXAMPLES))
    parser.add_argument("--serve", action="store_true", help="keep running until Ctrl-C")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="example-bot-") as tmp:
        async with running(args.example, workdir=Path(tmp)) as chat:
            if args.serve:
                print(f"mock at {chat.mock_url}, page {PAGE_ID}, user {chat.psid}")
                print("talk to the bot: mock-meta trigger --help; stop with Ctrl-C")
                await asyncio.Event().wait()
            for said, step in SCRIPTS[args.example]:
                print(f"user: {said}")
                for request in await step(chat):
                    print(f"  bot: {describe(request)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
