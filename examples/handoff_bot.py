"""A bot that hands the conversation to a person and takes it back.

    python -m examples handoff
    PYTHONPATH=. BOT_HANDLERS_MODULE=examples.handoff_bot messenger-bot serve

"human" (or the menu's "Talk to a person") passes the thread to the agents' inbox app
(``HANDOFF_APP_ID``, Meta's Page Inbox by default). While agents have it, the user's
messages reach the bot as standby events: "bot" takes the thread back. When the agents pass
the thread back, the bot says so.
"""

from __future__ import annotations

from bot import filters
from bot.context import Context
from bot.handoff import Handoff, thread_passed
from bot.page_api import PageApi
from bot.reply import Reply
from bot.routing import Router
from bot.settings import BotSettings


def register(router: Router, settings: BotSettings) -> None:
    """Called by ``load_router``: the Graph client becomes a dependency, the routes join."""
    api = PageApi(settings)
    router.on_shutdown(api.aclose)
    router.provide(handoff=Handoff(api, agent_app_id=settings.handoff_app_id))
    router.include_router(handoff)


handoff = Router(name="handoff")


@handoff.on_postback("HUMAN")
@handoff.on_text(when=filters.text_in("human", "agent", "person"))
async def to_a_person(ctx: Context) -> Reply:
    await ctx.deps.handoff.pass_to_agent(ctx.psid, metadata="the user asked for a person")
    return Reply.text("A person from our team will answer here. Type 'bot' to come back to me.")


@handoff.on_standby(when=filters.standby_of("message") & filters.text_in("bot"))
async def back_to_the_bot(ctx: Context) -> Reply:
    await ctx.deps.handoff.take_back(ctx.psid, metadata="the user asked for the bot")
    return Reply.text("I'm back. Ask me anything, or type 'human' again.")


@handoff.on_handover(when=thread_passed)
def agents_passed_it_back(ctx: Context) -> Reply:
    return Reply.text("Thanks for waiting. I'm the bot again; type 'human' any time.")


@handoff.on_text
def bot_answer(ctx: Context) -> Reply:
    return Reply.text("I'm the bot. Type 'human' to talk to a person.")


@handoff.on_error
def handover_failed(ctx: Context, exc: Exception) -> Reply:
    # Graph may refuse the thread change (no agents' app, wrong app id): tell the user
    # rather than retrying the event for minutes.
    return Reply.text("Sorry, I couldn't switch you over just now. Please try again later.")
