"""Platform state: apps, pages, users, subscriptions and each user's messaging window.

>>> state = PlatformState.from_settings(MockSettings())
>>> state.token_grant("test_page_token").page_id
'104501234567890'

Everything lives in dicts keyed for the Send API's hot path (token → page, (page, psid) →
user) so a lookup is O(1). The seed comes from the settings (the demo defaults) or from a
JSON/YAML seed file; ``reset()`` goes back to it. ``PlatformState`` implements the delivery
engine's subscriptions Protocol (``is_delivering`` / ``disable``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mock_meta.metrics import MockMetrics
from mock_meta.seed import app_kwargs, default_seed, load_seed_file, page_kwargs, user_kwargs
from mock_meta.settings import MockSettings

# Messenger webhook fields (reference §3). The seed subscribes to all of them at both levels.
MESSAGING_FIELDS: tuple[str, ...] = (
    "messages",
    "message_echoes",
    "message_deliveries",
    "message_reads",
    "message_reactions",
    "message_edits",
    "messaging_postbacks",
    "messaging_referrals",
    "messaging_optins",
    "messaging_handovers",
    "standby",
    "messaging_policy_enforcement",
    "messaging_account_linking",
    "messaging_game_plays",
    "response_feedback",
    "messaging_feedback",
)


class StateError(ValueError):
    """A create/subscribe request that contradicts the current state (unknown id, clash)."""


@dataclass
class App:
    app_id: str
    secret: str
    verify_token: str
    callback_url: str
    name: str = "Harness Test App"
    # App-level subscription (/{app-id}/subscriptions, object=page); empty = not subscribed.
    fields: set[str] = field(default_factory=set)

    def public(self) -> dict[str, Any]:
        """Config view without the secret or verify token."""
        return {
            "id": self.app_id,
            "name": self.name,
            "callback_url": self.callback_url,
            "fields": sorted(self.fields),
        }


@dataclass
class PageSubscription:
    app_id: str
    fields: set[str]
    active: bool = True
    disabled_reason: str | None = None


@dataclass
class Page:
    page_id: str
    name: str
    # token -> app id it was issued for (the echo's app_id)
    tokens: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, PageSubscription] = field(default_factory=dict)
    messenger_profile: dict[str, Any] = field(default_factory=dict)

    @property
    def disabled(self) -> bool:
        return any(not sub.active for sub in self.subscriptions.values())

    def public(self) -> dict[str, Any]:
        return {
            "id": self.page_id,
            "name": self.name,
            "token_count": len(self.tokens),
            "disabled": self.disabled,
            "subscribed_apps": [
                {
                    "app_id": sub.app_id,
                    "fields": sorted(sub.fields),
                    "active": sub.active,
                    "disabled_reason": sub.disabled_reason,
                }
                for sub in self.subscriptions.values()
            ],
        }


@dataclass
class User:
    psid: str
    page_id: str
    first_name: str = "Test"
    last_name: str = "User"
    profile_pic: str = "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=0"
    locale: str = "en_US"
    timezone: float = 0
    gender: str = "neutral"

    def profile(self) -> dict[str, Any]:
        return {
            "id": self.psid,
            "name": f"{self.first_name} {self.last_name}",
            "first_name": self.first_name,
            "last_name": self.last_name,
            "profile_pic": self.profile_pic,
            "locale": self.locale,
            "timezone": self.timezone,
            "gender": self.gender,
        }


@dataclass(frozen=True)
class TokenGrant:
    """What a page access token stands for."""

    page_id: str
    app_id: str


class PlatformState:
    """The mutable world of the fake platform, seeded and resettable."""

    def __init__(self, seed: Mapping[str, Any], *, metrics: MockMetrics | None = None) -> None:
        self._seed = seed
        self._metrics = metrics
        self.apps: dict[str, App] = {}
        self.pages: dict[str, Page] = {}
        self._users: dict[tuple[str, str], User] = {}
        self._psid_pages: dict[str, list[str]] = {}
        self._tokens: dict[str, TokenGrant] = {}
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._ids = itertools.count(1)
        self.reset()

    @classmethod
    def from_settings(
        cls, settings: MockSettings, *, metrics: MockMetrics | None = None
    ) -> PlatformState:
        seed = load_seed_file(settings.seed_file) if settings.seed_file else default_seed(settings)
        return cls(seed, metrics=metrics)

    # --- lifecycle ---------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seed: apps, pages, users, subscriptions; every window closed."""
        self.apps.clear()
        self.pages.clear()
        self._users.clear()
        self._psid_pages.clear()
        self._tokens.clear()
        self._last_inbound.clear()
        self._ids = itertools.count(1)
        try:
            for app in self._seed.get("apps", []):
                self.create_app(**app_kwargs(app))
            for page in self._seed.get("pages", []):
                self.create_page(**page_kwargs(page))
            for user in self._seed.get("users", []):
                self.create_user(**user_kwargs(user))
        except (TypeError, KeyError, AttributeError) as exc:
            raise StateError(f"malformed seed: {exc}") from exc
        self._update_gauge()

    # --- creation ----------------------------------------------------------------------

    def create_app(
        self,
        *,
        app_id: str | None = None,
        secret: str,
        verify_token: str,
        callback_url: str,
        name: str = "Harness Test App",
        fields: Iterable[str] = MESSAGING_FIELDS,
    ) -> App:
        app_id = app_id or self._new_id(1_100_000_000_000_000)
        if app_id in self.apps:
            raise StateError(f"app {app_id} already exists")
        app = App(app_id, secret, verify_token, callback_url, name, set(fields))
        self.apps[app_id] = app
        return app

    def create_page(
        self,
        *,
        page_id: str | None = None,
        name: str = "Test Page",
        tokens: Iterable[str] = (),
        app_id: str | None = None,
        subscribed_fields: Iterable[str] | None = MESSAGING_FIELDS,
    ) -> Page:
        """Create a page; its tokens are issued for ``app_id`` (default: the first app)."""
        page_id = page_id or self._new_id(100_000_000_000_000)
        if page_id in self.pages:
            raise StateError(f"page {page_id} already exists")
        owner = app_id or next(iter(self.apps), None)
        if owner is None or owner not in self.apps:
            raise StateError("a page needs an existing app (create one first)")
        page = Page(page_id, name)
        self.pages[page_id] = page
        for token in tokens:
            self.add_token(page_id, token, owner)
        if subscribed_fields is not None:
            self.subscribe_page(page_id, owner, subscribed_fields)
        return page

    def add_token(self, page_id: str, token: str, app_id: str) -> None:
        if not token:
            raise StateError("a token cannot be empty")
        grant = self._tokens.get(token)
        if grant is not None and grant.page_id != page_id:
            raise StateError("that token is already issued for another page")
        self.pages[page_id].tokens[token] = app_id
        self._tokens[token] = TokenGrant(page_id, app_id)

    def create_user(
        self, *, page_id: str | None = None, psid: str | None = None, **profile: Any
    ) -> User:
        """Create a user of ``page_id`` (default: the first page); a PSID is generated if absent."""
        page_id = page_id or next(iter(self.pages), None)
        if page_id is None or page_id not in self.pages:
            raise StateError(f"unknown page {page_id}")
        psid = psid or self._new_id(7_000_000_000_000_000)
        if (page_id, psid) in self._users:
            raise StateError(f"user {psid} already exists on page {page_id}")
        user = User(psid=psid, page_id=page_id, **profile)
        self._users[(page_id, psid)] = user
        self._psid_pages.setdefault(psid, []).append(page_id)
        return user

    # --- lookups (hot path) ------------------------------------------------------------

    def token_grant(self, token: str) -> TokenGrant | None:
        return self._tokens.get(token)

    def app_for_app_token(self, token: str) -> App | None:
        """An app access token is ``APP_ID|APP_SECRET`` (reference §9.1)."""
        app_id, sep, secret = token.partition("|")
        app = self.apps.get(app_id) if sep else None
        return app if app is not None and app.secret == secret else None

    def app_secret(self, app_id: str) -> str | None:
        app = self.apps.get(app_id)
        return app.secret if app else None

    def user(self, page_id: str, psid: str) -> User | None:
        return self._users.get((page_id, psid))

    def has_user(self, page_id: str, psid: str) -> bool:
        return (page_id, psid) in self._users

    def pages_of(self, psid: str) -> list[str]:
        return self._psid_pages.get(psid, [])

    def users(self) -> list[User]:
        return list(self._users.values())

    # --- messaging window --------------------------------------------------------------

    def record_inbound(self, page_id: str, psid: str, at: float) -> None:
        """The user acted in a way that opens/refreshes the 24 h window (reference §7)."""
        self._last_inbound[(page_id, psid)] = at

    def last_inbound(self, page_id: str, psid: str) -> float | None:
        return self._last_inbound.get((page_id, psid))

    # --- subscriptions (the delivery engine's Protocol) --------------------------------

    def is_delivering(self, app_id: str, page_id: str, field: str) -> bool:
        """True when ``field`` is subscribed at app level and active at page level."""
        app = self.apps.get(app_id)
        page = self.pages.get(page_id)
        if app is None or page is None or field not in app.fields:
            return False
        sub = page.subscriptions.get(app_id)
        return sub is not None and sub.active and field in sub.fields

    def delivering_apps(self, page_id: str, field: str) -> list[App]:
        """Apps that should receive ``field`` events of this page right now."""
        page = self.pages.get(page_id)
        if page is None:
            return []
        return [
            self.apps[app_id]
            for app_id in page.subscriptions
            if app_id in self.apps and self.is_delivering(app_id, page_id, field)
        ]

    def disable(self, app_id: str, page_id: str, reason: str) -> None:
        """Meta's 1-hour rule: the app is unsubscribed from the page until re-subscribed."""
        page = self.pages.get(page_id)
        sub = page.subscriptions.get(app_id) if page else None
        if sub is None:
            return
        sub.active = False
        sub.disabled_reason = reason
        self._update_gauge()

    def subscribe_page(self, page_id: str, app_id: str, fields: Iterable[str]) -> None:
        """``POST /{page-id}/subscribed_apps``: (re)subscribe and re-enable a disabled page."""
        page = self._page(page_id)
        page.subscriptions[app_id] = PageSubscription(app_id, set(fields))
        self._update_gauge()

    def unsubscribe_page(self, page_id: str, app_id: str) -> bool:
        removed = self._page(page_id).subscriptions.pop(app_id, None) is not None
        self._update_gauge()
        return removed

    def subscribe_app(
        self, app_id: str, *, fields: Iterable[str], callback_url: str, verify_token: str
    ) -> None:
        """``POST /{app-id}/subscriptions`` after a successful handshake: adds fields."""
        app = self.apps[app_id]
        app.callback_url = callback_url
        app.verify_token = verify_token
        app.fields |= set(fields)

    def unsubscribe_app(self, app_id: str, fields: Iterable[str] | None = None) -> None:
        app = self.apps[app_id]
        app.fields = set() if fields is None else app.fields - set(fields)

    # --- views -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "apps": [app.public() for app in self.apps.values()],
            "pages": [page.public() for page in self.pages.values()],
            "users": [
                {"psid": u.psid, "page_id": u.page_id, **_names(u)} for u in self._users.values()
            ],
        }

    # --- internals ---------------------------------------------------------------------

    def _page(self, page_id: str) -> Page:
        page = self.pages.get(page_id)
        if page is None:
            raise StateError(f"unknown page {page_id}")
        return page

    def _new_id(self, base: int) -> str:
        while True:
            candidate = str(base + next(self._ids))
            if (
                candidate not in self.apps
                and candidate not in self.pages
                and candidate not in self._psid_pages
            ):
                return candidate

    def _update_gauge(self) -> None:
        if self._metrics is None:
            return
        subs = [sub for page in self.pages.values() for sub in page.subscriptions.values()]
        active = sum(1 for sub in subs if sub.active)
        self._metrics.page_subscriptions.labels(state="active").set(active)
        self._metrics.page_subscriptions.labels(state="disabled").set(len(subs) - active)


def _names(user: User) -> dict[str, str]:
    return {"first_name": user.first_name, "last_name": user.last_name}
