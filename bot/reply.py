"""``Reply``: one Send API call a handler asks for (a message, or a sender action).

>>> Reply.text("hi").message
{'text': 'hi'}
>>> Reply.text("We're back", tag="HUMAN_AGENT").messaging_type
'MESSAGE_TAG'

Richer messages (quick replies, templates, attachments, typing indicators) come from the
builders in :mod:`bot.messages`; every builder checks the platform's limits first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bot import limits
from bot.limits import LimitError
from bot.window import EXTENDED_TAGS, RETIRED_TAGS

SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
_UNTAGGED_TYPES = ("RESPONSE", "UPDATE")


@dataclass(frozen=True, slots=True)
class Reply:
    """One Send API call to the user of the conversation.

    ``message`` is the Send API ``message`` object (empty for a sender action). ``tag``
    (with ``messaging_type`` ``MESSAGE_TAG``) is only needed outside the 24-hour window.
    ``sender_action`` (``typing_on``...) is sent instead of a message; ``persona_id`` sends
    as a persona (reference §9.6), with a message or a sender action.
    """

    message: dict[str, Any]
    messaging_type: str = "RESPONSE"
    tag: str | None = None
    sender_action: str | None = None
    persona_id: str | None = None

    @classmethod
    def text(cls, text: str, *, messaging_type: str = "RESPONSE", tag: str | None = None) -> Reply:
        """A plain text reply: ``Reply.text("hi")``; quick replies: ``bot.messages.text``."""
        message = {"text": limits.check_length("text", text, limits.TEXT)}
        if tag is not None:
            return cls(message, messaging_type="MESSAGE_TAG", tag=check_tag(tag))
        if messaging_type not in _UNTAGGED_TYPES:
            raise LimitError("messaging_type", "messaging_type must be RESPONSE or UPDATE")
        return cls(message, messaging_type=messaging_type)

    @classmethod
    def of(cls, message: dict[str, Any], *, tag: str | None = None) -> Reply:
        """Any ``message`` object; a ``tag`` makes it a ``MESSAGE_TAG`` message."""
        if tag is None:
            return cls(message)
        return cls(message, messaging_type="MESSAGE_TAG", tag=check_tag(tag))

    def as_persona(self, persona_id: str) -> Reply:
        """The same reply sent as the persona ``persona_id`` (``bot.handoff`` creates them)."""
        if not persona_id:
            raise LimitError("persona_id", "persona_id must not be empty")
        return replace(self, persona_id=persona_id)

    def send_options(self) -> dict[str, str]:
        """The optional ``SendApi.send`` keywords this reply sets (contracts §2).

        >>> Reply({}, sender_action="typing_on", persona_id="7").send_options()
        {'sender_action': 'typing_on', 'persona_id': '7'}
        """
        options = {"sender_action": self.sender_action, "persona_id": self.persona_id}
        return {key: value for key, value in options.items() if value is not None}

    def with_metadata(self, metadata: str) -> Reply:
        """Attach the handler's own ``metadata`` (< 1000 characters, echoed back by Meta)."""
        if self.sender_action is not None:
            raise LimitError("metadata", "a sender action cannot carry metadata")
        limits.check_length("metadata", metadata, limits.METADATA)
        return replace(self, message={**self.message, "metadata": metadata})


def check_tag(tag: str) -> str:
    """An active message tag, or a LimitError saying why the tag cannot be used."""
    if tag in RETIRED_TAGS:
        raise LimitError("tag", f"tag {tag} was retired on 27 Apr 2026; use a utility template")
    if tag not in EXTENDED_TAGS:
        raise LimitError("tag", f"tag must be one of {sorted(EXTENDED_TAGS)}, not {tag!r}")
    return tag
