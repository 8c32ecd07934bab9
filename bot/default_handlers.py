"""The reference bot: echoes text, acknowledges attachments and postbacks.

Load it with ``BOT_HANDLERS_MODULE=bot.default_handlers`` (the default); copy it to start
your own bot.
"""

from __future__ import annotations

from bot.routing import Context, Reply, Router

GET_STARTED = "GET_STARTED"

router = Router()


@router.on_text
@router.on_quick_reply
def you_said(ctx: Context) -> Reply | None:
    """Text and quick-reply taps (which carry the button's text) are echoed back."""
    if ctx.text is None:
        return None
    return Reply.text(f"You said: {ctx.text}")


@router.on_attachments
def attachment_received(ctx: Context) -> Reply:
    return Reply.text("I received your attachment.")


@router.on_postback(GET_STARTED)
def welcome(ctx: Context) -> Reply:
    return Reply.text("Welcome. Tell me what you need.")


@router.on_postback
def postback_received(ctx: Context) -> Reply:
    return Reply.text(f"Postback received: {ctx.payload}")
