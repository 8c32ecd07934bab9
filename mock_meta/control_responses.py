"""Answers of the control API, as documented at ``/docs`` (request bodies: ``control_models``).

Views allow extra keys, so a field added by the runtime shows up before its model learns it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


class Ok(_View):
    ok: bool = True


class Health(_View):
    ok: bool = True
    graph_version: str = Field(description="The version unversioned Graph calls are served by.")


class AppView(_View):
    id: str
    name: str
    callback_url: str
    fields: list[str] = Field(description="Webhook fields the app subscribed to.")


class PageView(_View):
    id: str
    name: str
    token_count: int
    disabled: bool = Field(description="Unsubscribed by Meta's 1-hour rule until re-subscribed.")
    subscribed_apps: list[dict[str, Any]]
    token: str | None = Field(default=None, description="Returned once, when the page is created.")


class UserView(_View):
    psid: str
    page_id: str
    first_name: str
    last_name: str


class ConfigView(_View):
    graph_version: str
    apps: list[AppView]
    pages: list[PageView]
    users: list[UserView]


class HandshakeOutcome(_View):
    ok: bool = Field(description="The callback echoed hub.challenge with a 200.")
    status: int | None = Field(description="HTTP status of the GET; null when unreachable.")
    body: str | None
    reason: str = Field(description="What went wrong, phrased as Meta's dashboard would.")
    failure: str | None = Field(description="A failure class, e.g. wrong_challenge, timeout.")


class ActionAccepted(_View):
    mid: str | None = Field(description="The message id, for actions that carry one.")
    action_id: str = Field(description="Key for the wait endpoints and the journal.")
    timestamp: int = Field(description="The event's timestamp (epoch milliseconds).")
    delivery_id: str | None = Field(description="The first delivery (one per subscribed app).")
    delivery_ids: list[str]
    event: dict[str, Any] = Field(description="The webhook event exactly as it is delivered.")


class ChaosView(_View):
    seed: int | None = Field(description="The seed in use (a random one if none was set).")
    duplicate_probability: float
    reorder_probability: float
    batch_max_entries: int
    signature: str = Field(description="valid | wrong | missing")


class FaultView(_View):
    id: int
    code: int | None
    subcode: int | None
    http_status: int | None
    latency_ms: int
    probability: float
    count: int | None
    psid: str | None
    sent: bool
    remaining: int | None = Field(description="Uses left; null = until cleared.")
    hits: int


class FaultList(_View):
    faults: list[FaultView]


class Removed(_View):
    removed: int = Field(description="How many faults were cleared.")


class SettingsView(_View):
    """The delivery profile, rate limit and Send API policy in force (extra keys: policy)."""

    retry_profile: dict[str, Any]
    delivery_timeout_seconds: float
    success_rule: str
    rate_limit_per_page_per_second: int


class ClockView(_View):
    now: float = Field(description="Platform time, epoch seconds.")
    frozen: bool
    rate: float = Field(description="Platform seconds per real second.")


class JournalPage(_View):
    items: list[dict[str, Any]]
    count: int = Field(description="Items in this answer (the newest, up to limit).")
    total: int = Field(description="Matching records kept in the journal.")


# --- the web console's API (mock_meta.console) ---------------------------------------------


class ConsoleSnapshot(_View):
    """Everything the console shows for one conversation (newest records first)."""

    clock: ClockView
    config: dict[str, Any] = Field(description="Apps, pages (with failure timelines) and users.")
    psid: str | None
    page_id: str | None
    conversation: list[dict[str, Any]] = Field(description="User actions and bot messages.")
    deliveries: list[dict[str, Any]] = Field(description="Webhooks with their attempts and bytes.")
    sends: list[dict[str, Any]] = Field(description="Send API calls, retries marked.")
    alerts: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    chaos: dict[str, Any]
    profile: dict[str, Any] = Field(description="The retry profile in force.")


class Redelivered(_View):
    delivery_id: str = Field(description="The new delivery.")
    redelivers: str = Field(description="The delivery whose event was queued again.")


class RawPostOutcome(_View):
    ok: bool = Field(description="The callback answered as the success rule requires.")
    status: int | None
    error: str | None = Field(description="The connection error's type, if there was no answer.")
    latency_ms: float
    headers: dict[str, str] = Field(description="The headers sent, signature included.")
    response_body: str | None = None


class Resubscribed(_View):
    app_id: str
    page_id: str
    fields: list[str]
