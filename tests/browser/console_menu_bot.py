"""Handlers for the browser tests' bot: the reference echo, plus a menu of quick replies and a
carousel, so the console has every kind of bot message to render and to tap.

Loaded by the bot process as ``BOT_HANDLERS_MODULE=console_menu_bot`` (this folder on
``PYTHONPATH``).
"""

from __future__ import annotations

from bot.routing import Context, Reply, Router

router = Router()

COLOURS = {"RED": "Red", "GREEN": "Green"}


@router.on_text
def text(ctx: Context) -> Reply | list[Reply] | None:
    if ctx.text is None:
        return None
    if ctx.text.strip().lower() != "menu":
        return Reply.text(f"You said: {ctx.text}")
    return [
        Reply({"attachment": {"type": "template", "payload": _carousel()}}),
        Reply(
            {
                "text": "Pick a colour",
                "quick_replies": [
                    {"content_type": "text", "title": title, "payload": payload}
                    for payload, title in COLOURS.items()
                ],
            }
        ),
    ]


@router.on_attachments
def attachment(ctx: Context) -> Reply:
    return Reply.text("I received your attachment.")


@router.on_quick_reply
def picked(ctx: Context) -> Reply:
    return Reply.text(f"You picked {ctx.payload}")


@router.on_postback
def postback(ctx: Context) -> Reply:
    return Reply.text(f"Postback received: {ctx.payload}")


def _carousel() -> dict[str, object]:
    return {
        "template_type": "generic",
        "elements": [
            {
                "title": f"{title} shirt",
                "subtitle": f"A {title.lower()} cotton shirt",
                "buttons": [{"type": "postback", "title": f"Buy {title}", "payload": f"BUY_{p}"}],
            }
            for p, title in COLOURS.items()
        ],
    }
