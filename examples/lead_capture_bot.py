"""A lead-capture bot: name, e-mail and phone asked one at a time, kept in ``ctx.state``.

The bot keeps ``ctx.state`` in its inbox and stores each change in the same write as the
handler's replies, so a retried or restarted event never skips a step.

    python -m examples lead                              # applies examples/profile.yaml first
    PYTHONPATH=. BOT_HANDLERS_MODULE=examples.lead_capture_bot messenger-bot serve

The persistent menu's "Get a quote" (``LEAD_START``) starts it; finished leads go to the
``leads`` dependency (a list here; a CRM client in real life).
"""

from __future__ import annotations

import re

from bot.context import Context
from bot.messages import QuickReply, text
from bot.reply import Reply
from bot.routing import Router

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[\d ()-]{6,20}$")


def register(router: Router) -> None:
    """Called by ``load_router``: leads go to a list."""
    router.provide(leads=[])
    router.include_router(leads)


leads = Router(name="leads")


@leads.on_postback("LEAD_START")
@leads.on_quick_reply("LEAD_START")
@leads.on_postback("GET_STARTED")
@leads.on_text(regex=r"(?i)\bquote\b")
def start(ctx: Context) -> Reply:
    ctx.state.clear()
    ctx.state["step"] = "name"
    return Reply.text("Happy to prepare a quote. What's your name?")


@leads.on_text
def answer(ctx: Context) -> Reply:
    """Every text (and the e-mail/phone quick replies) goes to the step the user is at."""
    value = (ctx.text or "").strip()
    step = ctx.state.get("step")
    if step == "name":
        ctx.state.update(name=value, step="email")
        return text(f"Thanks {value}! Your e-mail?", quick_replies=[QuickReply.email()])
    if step == "email":
        if not EMAIL.match(value):
            return text("That doesn't look like an e-mail address. Try again?")
        ctx.state.update(email=value, step="phone")
        return text("And a phone number?", quick_replies=[QuickReply.phone_number()])
    if step == "phone":
        if not PHONE.match(value):
            return text("Please send a phone number, e.g. +44 20 7946 0958.")
        lead = {"name": ctx.state["name"], "email": ctx.state["email"], "phone": value}
        ctx.deps.leads.append(lead)
        ctx.state.clear()
        return Reply.text(f"Thanks {lead['name']}, we'll call you on {value} within a day.")
    return text(
        "Tap 'Get a quote' in the menu to start.",
        quick_replies=[QuickReply("Get a quote", "LEAD_START")],
    )
