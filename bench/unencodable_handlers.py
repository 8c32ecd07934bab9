"""Handlers for the unencodable-replies fault run (``BOT_HANDLERS_MODULE``).

The reference bot's handlers, except that a text starting with ``cut`` is answered with its
echo truncated after a fixed number of UTF-16 code units, the way code that counts in UTF-16
(JavaScript's ``slice``, many SDKs) truncates: an emoji cut in half leaves a lone surrogate,
which no JSON encoder can turn into UTF-8, so the reply cannot be sent.

>>> truncate_utf16("ab\\N{GRINNING FACE}", 3) == "ab\\ud83d"
True
"""

from __future__ import annotations

from bot import default_handlers
from bot.routing import Context, Reply, Router

CUT_PREFIX = "cut"
router = Router()


def truncate_utf16(text: str, units: int) -> str:
    """``text`` cut after ``units`` UTF-16 code units (may end in half a surrogate pair)."""
    encoded = text.encode("utf-16-le", "surrogatepass")[: 2 * units]
    return encoded.decode("utf-16-le", "surrogatepass")


@router.on_text
def echo_or_cut(ctx: Context) -> Reply | None:
    reply = default_handlers.you_said(ctx)
    if reply is None or not (ctx.text or "").startswith(CUT_PREFIX):
        return reply
    echo = str(reply.message["text"])
    # Every cut message ends with an emoji (two code units): stop one unit into it.
    return Reply.text(truncate_utf16(echo, len(echo.encode("utf-16-le")) // 2 - 1))


router.on_quick_reply(default_handlers.you_said)
router.on_attachments(default_handlers.attachment_received)
router.on_postback(default_handlers.GET_STARTED)(default_handlers.welcome)
router.on_postback(default_handlers.postback_received)
