"""How many times each user message was answered, from the texts of the bot's replies.

The fault runs send every message with a unique text and the bot's handler echoes it
(``You said: <text>``), so a reply names the message it answers, whatever order, retry or
crash it came through. Pure functions over the mock journal's send records.

>>> tally(["a", "b", "c"], ["You said: a", "You said: a", "You said: c", "hello"])
ReplyTally(asked=3, lost=1, once=1, doubled=1, copies=1, unmatched=1)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REPLY_PREFIX = "You said: "


@dataclass(frozen=True)
class ReplyTally:
    """``asked`` messages answered 0 (``lost``), 1 (``once``) or 2+ times (``doubled``);
    ``copies`` is the number of replies beyond each message's first; ``unmatched`` replies
    answer none of the messages asked."""

    asked: int
    lost: int
    once: int
    doubled: int
    copies: int
    unmatched: int

    def doubled_share(self) -> float:
        """Share of the messages answered more than once (0.0 when nothing was asked)."""
        return self.doubled / self.asked if self.asked else 0.0


def tally(
    asked: Iterable[str], replies: Sequence[str], *, prefix: str = REPLY_PREFIX
) -> ReplyTally:
    """Count the answers to each text of ``asked`` among reply texts ``prefix + text``."""
    wanted = list(asked)
    if len(set(wanted)) != len(wanted):
        raise ValueError("asked texts must be unique: a reply could not say which it answers")
    answers = Counter(reply.removeprefix(prefix) for reply in replies if reply.startswith(prefix))
    per_message = [answers.pop(text, 0) for text in wanted]
    unmatched = sum(answers.values())  # echoes of texts nobody asked
    return ReplyTally(
        asked=len(wanted),
        lost=per_message.count(0),
        once=per_message.count(1),
        doubled=sum(1 for n in per_message if n >= 2),
        copies=sum(n - 1 for n in per_message if n >= 2),
        unmatched=unmatched + sum(1 for reply in replies if not reply.startswith(prefix)),
    )


def accepted_replies(sends: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The mock journal's send records of messages the platform accepted (2xx, no error)."""
    return [
        record
        for record in sends
        if record["kind"] == "message"
        and record["error_code"] is None
        and 200 <= record["status"] < 300
    ]


def batched(sends: Iterable[Mapping[str, Any]]) -> int:
    """How many accepted replies were items of a Graph batch request (the mock records
    where each call's token came from: ``batch`` for an item using its batch's token)."""
    return sum(
        1 for r in accepted_replies(sends) if (r.get("call") or {}).get("token_source") == "batch"
    )


def reply_seconds(sends: Iterable[Mapping[str, Any]]) -> list[float]:
    """Seconds from each answered message to its first reply, as the mock's accounting
    attributed them (``time_to_reply_seconds`` of the replies counted as answers)."""
    return [
        float(r["time_to_reply_seconds"])
        for r in accepted_replies(sends)
        if r.get("attribution") == "answer" and r.get("time_to_reply_seconds") is not None
    ]


def reply_texts(sends: Iterable[Mapping[str, Any]]) -> list[str]:
    """The text of each accepted reply (``""`` for a reply without one, e.g. an attachment)."""
    return [_text(record["request"].get("message")) for record in accepted_replies(sends)]


def _text(message: Any) -> str:
    if isinstance(message, str):  # a form-encoded call carries the message as JSON text
        try:
            message = json.loads(message)
        except ValueError:
            return ""
    return str(message.get("text", "")) if isinstance(message, dict) else ""
