"""The page's Messenger Profile as a file: Get Started, greeting, ice breakers, persistent menu.

``messenger-bot profile apply profile.yaml`` makes the page match the file and prints what
changed; applying the same file again changes nothing. Only the properties the file names
are managed: the others are left as they are. A file looks like this::

    get_started: GET_STARTED
    greeting: "Hi {{user_first_name}}, how can we help?"
    ice_breakers:
      - {question: "What are your opening hours?", payload: HOURS}
    persistent_menu:
      - {title: "Talk to a person", payload: HUMAN}
      - {title: "Our shop", url: "https://example.com/"}

Each list may instead be given per locale (``greeting: {default: "Hi", fr_FR: "Salut"}``).

>>> desired = profile_properties(load_profile_text("greeting: Hello\\nget_started: GO"))
>>> changes = plan({"greeting": [{"locale": "default", "text": "Hi"}]}, desired)
>>> sorted(changes.set), changes.unchanged
(['get_started', 'greeting'], [])
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot import limits
from bot.limits import LimitError
from bot.page_api import PageApi

MANAGED = ("get_started", "greeting", "ice_breakers", "persistent_menu")
DEFAULT_LOCALE = "default"


class ProfileError(ValueError):
    """The profile file cannot be read or breaks a platform limit; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceBreaker(_Strict):
    question: str = Field(min_length=1, max_length=80)
    payload: str = Field(min_length=1, max_length=limits.PAYLOAD)


class MenuItem(_Strict):
    """A postback (``payload``) or a link (``url``) in the persistent menu."""

    title: str = Field(min_length=1, max_length=limits.MENU_ITEM_TITLE)
    payload: str | None = Field(default=None, max_length=limits.PAYLOAD)
    url: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> MenuItem:
        if (self.payload is None) == (self.url is None):
            raise ValueError("a menu item needs exactly one of payload or url")
        return self

    def to_graph(self) -> dict[str, Any]:
        if self.url is not None:
            return {"type": "web_url", "title": self.title, "url": self.url}
        return {"type": "postback", "title": self.title, "payload": self.payload}


class Menu(_Strict):
    items: list[MenuItem] = Field(max_length=limits.MENU_ITEMS)
    composer_input_disabled: bool = False


class ProfileFile(_Strict):
    """The file's schema; each property may be one value or a mapping of locale -> value."""

    get_started: str | None = Field(default=None, min_length=1, max_length=limits.PAYLOAD)
    greeting: str | dict[str, str] | None = None
    ice_breakers: list[IceBreaker] | dict[str, list[IceBreaker]] | None = None
    persistent_menu: list[MenuItem] | Menu | dict[str, list[MenuItem] | Menu] | None = None


def load_profile_text(text: str, *, source: str = "profile") -> ProfileFile:
    """Parse and check a profile (YAML or JSON text)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML ({exc})") from None
    try:
        return ProfileFile.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise ProfileError(f"{source}: {where}: {first['msg']}") from None


def load_profile(path: Path) -> ProfileFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror}") from None
    return load_profile_text(text, source=str(path))


def profile_properties(profile: ProfileFile) -> dict[str, Any]:
    """The Graph ``messenger_profile`` properties the file sets, with the platform's limits."""
    out: dict[str, Any] = {}
    if profile.get_started is not None:
        out["get_started"] = {"payload": profile.get_started}
    if profile.greeting is not None:
        greetings = _by_locale(profile.greeting)
        for text in greetings.values():
            limits.check_length("greeting", text, limits.GREETING)
        out["greeting"] = [{"locale": loc, "text": text} for loc, text in greetings.items()]
    if profile.ice_breakers is not None:
        out["ice_breakers"] = []
        for loc, breakers in _by_locale(profile.ice_breakers).items():
            limits.check_count("ice breakers", breakers, limits.ICE_BREAKERS, least=1)
            actions = [{"question": b.question, "payload": b.payload} for b in breakers]
            out["ice_breakers"].append({"locale": loc, "call_to_actions": actions})
    if profile.persistent_menu is not None:
        out["persistent_menu"] = []
        for loc, menu in _by_locale(profile.persistent_menu).items():
            menu = menu if isinstance(menu, Menu) else Menu(items=menu)
            out["persistent_menu"].append(
                {
                    "locale": loc,
                    "composer_input_disabled": menu.composer_input_disabled,
                    "call_to_actions": [item.to_graph() for item in menu.items],
                }
            )
        if profile.get_started is None:
            raise LimitError("persistent_menu", "a persistent menu needs get_started as well")
    return out


@dataclass(frozen=True, slots=True)
class ProfilePlan:
    """What ``apply`` changes: properties to set (new or different) and those already right."""

    set: dict[str, Any] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    current: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.set


def plan(current: Mapping[str, Any], desired: Mapping[str, Any]) -> ProfilePlan:
    """Compare the page's properties with the file's (pure)."""
    changes = {k: v for k, v in desired.items() if _canonical(current.get(k)) != _canonical(v)}
    same = [k for k in desired if k not in changes]
    return ProfilePlan(set=changes, unchanged=same, current=dict(current))


def describe(plan_: ProfilePlan) -> str:
    """A readable diff of ``plan_``: one unified diff of JSON per property that changes."""
    if plan_.empty:
        return "profile up to date: nothing to change\n"
    lines: list[str] = []
    for name, value in plan_.set.items():
        before = plan_.current.get(name)
        lines.append(f"{'~' if before is not None else '+'} {name}\n")
        lines.extend(
            difflib.unified_diff(
                _pretty(before).splitlines(keepends=True),
                _pretty(value).splitlines(keepends=True),
                fromfile=f"page/{name}",
                tofile=f"file/{name}",
            )
        )
    for name in plan_.unchanged:
        lines.append(f"= {name}\n")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


async def read_profile(api: PageApi, fields: tuple[str, ...] = MANAGED) -> dict[str, Any]:
    """The page's current properties (``GET /me/messenger_profile``)."""
    answer = await api.call("GET", "messenger_profile", params={"fields": ",".join(fields)})
    data = answer.get("data") if isinstance(answer, dict) else None
    return dict(data[0]) if isinstance(data, list) and data else {}


async def apply_profile(
    api: PageApi, profile: ProfileFile, *, dry_run: bool = False
) -> ProfilePlan:
    """Set what differs in one ``POST`` (so a new menu and its Get Started go together)."""
    desired = profile_properties(profile)
    changes = plan(await read_profile(api, tuple(desired) or MANAGED), desired)
    if not changes.empty and not dry_run:
        await api.call("POST", "messenger_profile", changes.set)
    return changes


def _by_locale(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {DEFAULT_LOCALE: value}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
