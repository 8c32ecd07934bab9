"""What a bot should answer: the small conversation file ``mock-meta check`` drives it with.

A YAML or JSON file with a list of turns. Each turn is one user action and what the bot's
reply must contain (``reply_contains``) or match (``reply_matches``, a regular expression);
``reply: none`` means the bot must stay silent. ``{text}`` in an expectation stands for the
text the user sent. The default fits echo bots: three texts, each reply containing its text.

    # conversation.yaml
    turns:
      - text: "hello"
        reply_contains: "{text}"
      - postback: "GET_STARTED"
        reply_matches: "(?i)welcome"
      - quick_reply: "RED"
        text: "Red"
        reply_contains: "Red"

>>> turn = Turn(text="hi", reply_contains="You said: {text}")
>>> turn.expectation(), turn.accepts("You said: hi"), turn.accepts("bye")
("a reply containing 'You said: hi'", True, False)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConversationError(ValueError):
    """The conversation file cannot be used; the message says where and why."""


class Turn(BaseModel):
    """One user action and the reply it should get."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = Field(default=None, min_length=1, max_length=2000)
    postback: str | None = Field(default=None, min_length=1, max_length=1000)
    quick_reply: str | None = Field(default=None, min_length=1, max_length=1000)
    reply_contains: str | None = None
    reply_matches: str | None = None
    reply: Literal["any", "none"] = "any"

    @model_validator(mode="after")
    def _one_action(self) -> Turn:
        if self.postback is not None and (self.text or self.quick_reply):
            raise ValueError("a turn is a text, a quick_reply (with its text) or a postback")
        if self.text is None and self.postback is None and self.quick_reply is None:
            raise ValueError("a turn needs text, postback or quick_reply")
        if self.reply_matches is not None:
            try:
                re.compile(self.reply_matches)
            except re.error as exc:
                raise ValueError(f"reply_matches is not a regular expression: {exc}") from None
        return self

    @property
    def action(self) -> dict[str, Any]:
        """The body of ``POST /_mock/users/{psid}/actions`` for this turn."""
        if self.postback is not None:
            return {"type": "postback", "payload": self.postback}
        if self.quick_reply is not None:
            return {"type": "quick_reply", "payload": self.quick_reply, "text": self.text}
        return {"type": "text", "text": self.text}

    @property
    def expects_reply(self) -> bool:
        return self.reply != "none"

    def expectation(self) -> str:
        if not self.expects_reply:
            return "no reply"
        if self.reply_contains is not None:
            return f"a reply containing {self._fill(self.reply_contains)!r}"
        if self.reply_matches is not None:
            return f"a reply matching /{self.reply_matches}/"
        return "any reply"

    def accepts(self, reply_text: str | None) -> bool:
        """Whether a reply with ``reply_text`` (None: not a text message) meets the turn."""
        if self.reply_contains is not None:
            return reply_text is not None and self._fill(self.reply_contains) in reply_text
        if self.reply_matches is not None:
            return reply_text is not None and re.search(self.reply_matches, reply_text) is not None
        return True

    def _fill(self, template: str) -> str:
        return template.replace("{text}", self.text or "")


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    turns: list[Turn] = Field(min_length=1, max_length=50)

    @property
    def probe(self) -> Turn:
        """The turn single-message checks send: the first text turn expecting a reply (or the
        first turn expecting one, or the first turn)."""
        answered = [t for t in self.turns if t.expects_reply]
        return (self.text_turns or answered or self.turns)[0]

    @property
    def text_turns(self) -> list[Turn]:
        """Turns that send plain text and expect a reply (used by the burst and order checks)."""
        return [t for t in self.turns if t.action["type"] == "text" and t.expects_reply]


DEFAULT_CONVERSATION = Conversation(
    turns=[
        Turn(text="check one", reply_contains="{text}"),
        Turn(text="check two", reply_contains="{text}"),
        Turn(text="check three", reply_contains="{text}"),
    ]
)


def load_conversation(path: str | Path | None) -> Conversation:
    """The conversation in ``path`` (YAML, or JSON by extension), or the default one."""
    if path is None:
        return DEFAULT_CONVERSATION
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return Conversation.model_validate(data)
    except OSError as exc:
        raise ConversationError(f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConversationError(f"{path} is not valid YAML/JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise ConversationError(f"{path}: {where}: {first['msg']}") from None
