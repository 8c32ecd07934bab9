"""Where the platform's starting world comes from: the demo defaults or a seed file.

A seed is ``{apps: [...], pages: [...], users: [...]}`` (JSON or YAML)::

    apps:  [{id: "1234567890123456", secret: s, verify_token: t, callback_url: "http://…"}]
    pages: [{id: "104501234567890", name: P, tokens: [tok], app_id: "1234567890123456"}]
    users: [{psid: "6543210987654321", page_id: "104501234567890", first_name: Peter}]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mock_meta.settings import MockSettings


class SeedError(ValueError):
    """A seed file that cannot be read as apps/pages/users."""


def default_seed(settings: MockSettings) -> dict[str, Any]:
    """The demo world: one app, one page, one user (docs/architecture.md defaults)."""
    return {
        "apps": [
            {
                "id": settings.app_id,
                "secret": settings.app_secret.get_secret_value(),
                "verify_token": settings.verify_token.get_secret_value(),
                "callback_url": settings.callback_url,
            }
        ],
        "pages": [
            {
                "id": settings.page_id,
                "name": settings.page_name,
                "tokens": [settings.page_token.get_secret_value()],
                "app_id": settings.app_id,
            }
        ],
        "users": [
            {
                "psid": settings.user_psid,
                "page_id": settings.page_id,
                "first_name": "Peter",
                "last_name": "Chang",
            }
        ],
    }


def load_seed_file(path: Path) -> dict[str, Any]:
    """Read a JSON (``.json``) or YAML seed file: ``{apps: [...], pages: [...], users: [...]}``."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SeedError(f"seed file {path} must hold a mapping with apps/pages/users")
    return data


def app_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "app_id": str(raw["id"]),
        "secret": str(raw["secret"]),
        "verify_token": str(raw.get("verify_token", "")),
        "callback_url": str(raw.get("callback_url", "")),
        "name": str(raw.get("name", "Harness Test App")),
    }
    if "fields" in raw:
        kwargs["fields"] = [str(f) for f in raw["fields"]]
    return kwargs


def page_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    tokens = raw.get("tokens") or ([raw["token"]] if "token" in raw else [])
    kwargs: dict[str, Any] = {
        "page_id": str(raw["id"]),
        "name": str(raw.get("name", "Test Page")),
        "tokens": [str(t) for t in tokens],
        "app_id": str(raw["app_id"]) if raw.get("app_id") else None,
    }
    if "subscribed_fields" in raw:
        fields = raw["subscribed_fields"]
        kwargs["subscribed_fields"] = None if fields is None else [str(f) for f in fields]
    return kwargs


def user_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"first_name", "last_name", "profile_pic", "locale", "timezone", "gender"}
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k in allowed}
    kwargs["psid"] = str(raw["psid"])
    kwargs["page_id"] = str(raw["page_id"]) if raw.get("page_id") else None
    return kwargs
