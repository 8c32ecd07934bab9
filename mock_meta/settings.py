"""The mock platform's configuration, read from ``MOCK_META_*`` environment variables.

Defaults match the bot's demo config (docs/architecture.md), so ``mock-meta serve`` and
``messenger-bot serve`` talk to each other with no extra configuration. Tests build it with
keyword arguments: ``MockSettings(port=0, emit_reads=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mock_meta.accounting import REPLY_EXPECTED_KINDS
from mock_meta.control_models import ActionType

DEFAULT_APP_ID = "1234567890123456"
DEFAULT_APP_SECRET = "test_app_secret"
DEFAULT_VERIFY_TOKEN = "test_verify_token"
DEFAULT_PAGE_ID = "104501234567890"
DEFAULT_PAGE_TOKEN = "test_page_token"
DEFAULT_PSID = "6543210987654321"
DEFAULT_CALLBACK_URL = "http://127.0.0.1:8000/webhook"

TimestampUnit = Literal["milliseconds", "seconds"]


class MockSettings(BaseSettings):
    """Environment variables are ``MOCK_META_`` + the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="MOCK_META_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    # JSON or YAML file with apps/pages/users; replaces the built-in seed when set.
    seed_file: Path | None = None

    # --- the built-in seed (the public test values of the demo, not real secrets) ---
    app_id: str = DEFAULT_APP_ID
    app_secret: SecretStr = SecretStr(DEFAULT_APP_SECRET)
    verify_token: SecretStr = SecretStr(DEFAULT_VERIFY_TOKEN)
    page_id: str = DEFAULT_PAGE_ID
    page_name: str = "Harness Test Page"
    page_token: SecretStr = SecretStr(DEFAULT_PAGE_TOKEN)
    user_psid: str = DEFAULT_PSID
    callback_url: str = DEFAULT_CALLBACK_URL

    # --- delivery (Meta: 200 within 5 s; the older FAQ said 20 s) ---
    delivery_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # "exact_200" (Meta's documented rule) or "any_2xx" [U].
    success_rule: Literal["exact_200", "any_2xx"] = "exact_200"
    # A named profile of mock_meta.retry_profile.PROFILES (retry spacing, alert, disable).
    retry_profile: str = "meta-2026-05"
    # Webhook POSTs in flight at once (over as many keep-alive connections); one per PSID.
    delivery_concurrency: int = Field(default=64, ge=1, le=4096)
    # Off for fidelity (Meta sends none): a W3C traceparent on each delivery, so a test trace
    # runs user action -> delivery -> bot -> Send API -> mock (the journal keeps both ends).
    propagate_traceparent: bool = False

    # --- Send API policy ---
    # Per-page Send API calls per second before 613; 0 switches the limiter off.
    rate_limit_per_page_per_second: int = Field(default=0, ge=0)
    emit_echoes: bool = True
    emit_deliveries: bool = True
    emit_reads: bool = False
    # Webhook timestamps (entry.time, event.timestamp) in epoch "milliseconds" (documented) or
    # "seconds", which Meta sometimes sends (issue 8, seen by SDK users); bots must cope.
    timestamp_unit: TimestampUnit = "milliseconds"
    # ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE → error 100 (Meta, 2026-04-27+).
    enforce_retired_tags: bool = True
    require_appsecret_proof: bool = False
    # Whether omitting messaging_type is an error (Meta's enforcement is undocumented) [U].
    require_messaging_type: bool = False
    window_seconds: float = Field(default=24 * 3600, gt=0)
    human_agent_window_seconds: float = Field(default=7 * 24 * 3600, gt=0)

    # A call to an expired Graph version: served by the oldest available one, as Meta
    # documents ("upgrade"), or refused with Graph's error 12 ("reject").
    expired_graph_versions: Literal["upgrade", "reject"] = "upgrade"

    journal_max_entries: int = Field(default=100_000, ge=100)
    # The web console at / (mock_meta.console); off also skips its capture of webhook bytes.
    console: bool = True
    # Action kinds a bot owes a reply once it acknowledged them (the journal's accounting);
    # JSON in the environment: MOCK_META_REPLY_EXPECTED_KINDS='["text","postback"]'.
    reply_expected_kinds: frozenset[str] = REPLY_EXPECTED_KINDS
    graph_version: str = "v25.0"

    @field_validator("reply_expected_kinds")
    @classmethod
    def _known_kinds(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - set(get_args(ActionType)))
        if unknown:
            raise ValueError(f"unknown action kinds {unknown}; known: {list(get_args(ActionType))}")
        return value

    @field_validator("graph_version")
    @classmethod
    def _version_shape(cls, value: str) -> str:
        if not (value.startswith("v") and value[1:].replace(".", "", 1).isdigit()):
            raise ValueError("MOCK_META_GRAPH_VERSION must look like v25.0")
        return value
