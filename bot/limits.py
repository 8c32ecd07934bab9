"""The Send API's documented limits (reference §5.4, §9.3, §9.6) and the error that names one.

Builders check these before anything is sent, so a bad reply fails in the handler with a
message saying which limit it broke, instead of as a Graph error 100 at send time.

>>> check_length("quick reply title", "A very long quick reply title", QUICK_REPLY_TITLE)
Traceback (most recent call last):
...
bot.limits.LimitError: quick reply title is 29 characters; the limit is 20
"""

from __future__ import annotations

from collections.abc import Sized

TEXT = 2000  # message.text (Graph: "less than or equal to 2000")
METADATA = 999  # message.metadata: "< 1000 characters"
PAYLOAD = 1000  # postback and quick-reply payloads
QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20
BUTTON_TITLE = 20
BUTTONS = 3  # per button template, generic element or media element
BUTTON_TEXT = 640  # button template text
ELEMENTS = 10  # generic template (carousel)
ELEMENT_TITLE = 80
ELEMENT_SUBTITLE = 80
IMAGES = 30  # message.attachments (images only)
PERSONA_NAME = 50
GREETING = 160
MENU_ITEMS = 20
MENU_ITEM_TITLE = 30
ICE_BREAKERS = 4


class LimitError(ValueError):
    """A reply or profile breaks a platform limit; ``what`` names the field, ``limit`` the bound."""

    def __init__(self, what: str, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.limit = limit


def check_length(what: str, value: str, limit: int, *, required: bool = True) -> str:
    """``value`` unchanged when it has 1..``limit`` characters (0 allowed if not required)."""
    if required and not value:
        raise LimitError(what, f"{what} must not be empty", limit=limit)
    if len(value) > limit:
        raise LimitError(
            what, f"{what} is {len(value)} characters; the limit is {limit}", limit=limit
        )
    return value


def check_count(what: str, items: Sized, most: int, *, least: int = 0) -> None:
    """``least`` <= ``len(items)`` <= ``most``, or a LimitError naming ``what``."""
    count = len(items)
    if count > most:
        raise LimitError(what, f"{count} {what}; the limit is {most}", limit=most)
    if count < least:
        raise LimitError(what, f"{count} {what}; at least {least} required", limit=least)
