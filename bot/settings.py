"""All of the bot's configuration, read from the environment in one place.

Build it once at the entry point (``BotSettings()``) and pass it down; tests build it
with keyword arguments instead (``BotSettings(app_secret="s", ...)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BotSettings(BaseSettings):
    """Environment variables are the field names in upper case, e.g. ``MESSENGER_APP_SECRET``."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # --- Meta credentials (required secrets have no default) ---
    verify_token: SecretStr = Field(alias="MESSENGER_VERIFY_TOKEN")
    app_secret: SecretStr = Field(alias="MESSENGER_APP_SECRET")
    # A second secret accepted during rotation; empty means none.
    app_secret_previous: SecretStr = Field(
        default=SecretStr(""), alias="MESSENGER_APP_SECRET_PREVIOUS"
    )
    page_access_token: SecretStr = Field(alias="MESSENGER_PAGE_ACCESS_TOKEN")
    page_id: str = Field(default="", alias="MESSENGER_PAGE_ID")
    # Extra pages for multi-page bots: "page_id=token,page_id=token".
    page_tokens: SecretStr = Field(default=SecretStr(""), alias="MESSENGER_PAGE_TOKENS")
    appsecret_proof: bool = Field(default=False, alias="MESSENGER_APPSECRET_PROOF")

    # --- Graph / Send API ---
    graph_api_base: str = Field(default="https://graph.facebook.com", alias="GRAPH_API_BASE")
    graph_api_version: str = Field(default="v25.0", alias="GRAPH_API_VERSION")
    send_timeout_seconds: float = Field(default=10.0, alias="SEND_API_TIMEOUT_SECONDS")
    send_max_attempts: int = Field(default=4, alias="SEND_API_MAX_ATTEMPTS")
    send_backoff_base_seconds: float = Field(default=0.2, alias="SEND_API_BACKOFF_BASE_SECONDS")
    send_backoff_max_seconds: float = Field(default=5.0, alias="SEND_API_BACKOFF_MAX_SECONDS")
    send_max_connections: int = Field(default=100, alias="SEND_API_MAX_CONNECTIONS")
    # Requests in flight at once (also the pool size, capped by SEND_API_MAX_CONNECTIONS):
    # httpx's per-call CPU grows with connections; calls beyond this wait and are batched.
    send_max_in_flight: int = Field(default=4, ge=1, alias="SEND_API_MAX_IN_FLIGHT")
    # Coalesce waiting calls into Graph batch requests (reference §8: at most 50 per batch).
    send_batch: bool = Field(default=True, alias="SEND_API_BATCH")
    send_batch_max: int = Field(default=50, ge=1, le=50, alias="SEND_API_BATCH_MAX")
    # A batch of n calls may take SEND_API_TIMEOUT_SECONDS + n x this to answer (Graph runs its
    # parts one by one in the worst case); a batch whose answer is lost is risky for every call.
    send_batch_call_timeout_seconds: float = Field(
        default=0.5, ge=0, alias="SEND_API_BATCH_CALL_TIMEOUT_SECONDS"
    )
    # The connection pool under the httpx API: aiohttp's (httpx-aiohttp; 1.1-1.7x the bot's
    # Send API calls per CPU-second in `python -m bench send`) or httpx's own.
    send_transport: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp", alias="SEND_API_TRANSPORT"
    )

    # --- HTTP edge ---
    host: str = Field(default="127.0.0.1", alias="HOST")
    port: int = Field(default=8000, alias="PORT")
    max_body_bytes: int = Field(default=1024 * 1024, alias="WEBHOOK_MAX_BODY_BYTES")
    # Meta batches at most 1,000 updates per POST (reference §2.3); more is refused before parsing.
    max_events_per_post: int = Field(default=1000, ge=1, alias="WEBHOOK_MAX_EVENTS")
    # Edge limits against hostile clients (bot/http_guard.py): request line plus headers, the
    # time to send them, the time to send the body, idle keep-alive, and open connections.
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024, alias="HTTP_MAX_HEADER_BYTES")
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, alias="HTTP_HEADER_TIMEOUT_SECONDS"
    )
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, alias="HTTP_BODY_TIMEOUT_SECONDS")
    http_keep_alive_seconds: int = Field(default=5, ge=1, alias="HTTP_KEEP_ALIVE_SECONDS")
    http_max_connections: int = Field(default=1000, ge=1, alias="HTTP_MAX_CONNECTIONS")
    # Admission control (bot/admission.py): while more events are acked and unfinished than
    # this many seconds of the recent finishing rate (never fewer than the floor), webhook POSTs
    # get a fast 503 + Retry-After and Meta delivers them again. Spike protection, not
    # capacity: Meta disables a subscription after about an hour of failures. 0 turns it off.
    # 2.5 s, half the reply SLO. At 4,000 POSTs/s, 2.5 instead of 5 shortened the flood's
    # first seconds, when every POST is let in: its p99 answer went from 0.54-1.09 s to
    # 0.12-0.26 s, with slightly more replies/s (6 turns), and at 750 and 900 events/s,
    # below capacity, neither refused (4 turns at each; bench/README.md, "2026-12-02 at
    # 13:30").
    # Lower is not free: at 2 s, a loaded machine's hiccups once made a bot running below its
    # capacity (780/s) refuse in 4 of 8 steps.
    webhook_backlog_limit_seconds: float = Field(
        default=2.5, ge=0, alias="WEBHOOK_BACKLOG_LIMIT_SECONDS"
    )
    webhook_backlog_floor_events: int = Field(
        default=500, ge=1, alias="WEBHOOK_BACKLOG_FLOOR_EVENTS"
    )
    # Event timestamps further ahead of arrival than this are clamped to the arrival time.
    event_future_tolerance_seconds: float = Field(
        default=60.0, ge=0, alias="EVENT_FUTURE_TOLERANCE_SECONDS"
    )

    # --- Durable inbox ---
    inbox_backend: Literal["sqlite", "memory", "redis"] = Field(
        default="sqlite", alias="INBOX_BACKEND"
    )
    inbox_path: Path = Field(default=Path("var/inbox.db"), alias="INBOX_PATH")
    # FULL survives power loss; NORMAL survives process crashes (kill -9) only.
    inbox_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = Field(
        default="FULL", alias="INBOX_SYNCHRONOUS"
    )
    dedup_retention_seconds: float = Field(default=7 * 24 * 3600, alias="DEDUP_RETENTION_SECONDS")

    # --- Redis inbox (INBOX_BACKEND=redis; docs/scaling.md) ---
    # May carry a password, hence secret: never logged.
    redis_url: SecretStr = Field(default=SecretStr("redis://127.0.0.1:6379/0"), alias="REDIS_URL")
    redis_key_prefix: str = Field(default="mhb", min_length=1, alias="REDIS_KEY_PREFIX")
    # Fixed for the life of the data: events are placed by hash(PSID) mod this.
    redis_shards: int = Field(default=16, ge=1, le=1024, alias="REDIS_SHARDS")
    # A shard whose owner stops renewing is taken over after at most lease + claim interval.
    redis_lease_seconds: float = Field(default=5.0, gt=0, alias="REDIS_LEASE_SECONDS")
    redis_claim_interval_seconds: float = Field(
        default=1.0, gt=0, alias="REDIS_CLAIM_INTERVAL_SECONDS"
    )
    redis_timeout_seconds: float = Field(default=2.0, gt=0, alias="REDIS_TIMEOUT_SECONDS")
    # Commands beyond this many at once wait (up to the timeout) for a free connection.
    redis_max_connections: int = Field(default=100, ge=1, alias="REDIS_MAX_CONNECTIONS")
    # New-event notices kept per shard (ids only); the owner reads them within milliseconds.
    redis_feed_max_len: int = Field(default=100_000, ge=1_000, alias="REDIS_FEED_MAX_LEN")

    # --- Workers ---
    worker_concurrency: int = Field(default=64, alias="WORKER_CONCURRENCY")
    # Hold each event this long so late-arriving earlier events of the same sender sort first.
    ordering_window_ms: int = Field(default=100, alias="ORDERING_WINDOW_MS")
    handler_max_attempts: int = Field(default=5, alias="HANDLER_MAX_ATTEMPTS")
    handler_backoff_base_seconds: float = Field(default=0.5, alias="HANDLER_BACKOFF_BASE_SECONDS")
    handlers_module: str = Field(default="bot.default_handlers", alias="BOT_HANDLERS_MODULE")
    shutdown_grace_seconds: float = Field(default=10.0, alias="SHUTDOWN_GRACE_SECONDS")

    # --- Reply outbox (docs/architecture.md "Reply outbox") ---
    # Replies leaving at once, across conversations (one conversation sends in order).
    # Each reply waits for two group commits and its Graph call, so under load one takes tens
    # of milliseconds: 64 at once capped a loaded core at about 1,100-1,300 replies/s, 256
    # leaves the cap to the CPU (measured: bench/README.md, "2026-11-30 night").
    outbox_concurrency: int = Field(default=256, ge=1, alias="OUTBOX_CONCURRENCY")
    # While Graph fails transiently a reply waits with capped back-off until this many seconds
    # after its commit; unset: for as long as the user's messaging window stays open.
    reply_deadline_seconds: float | None = Field(default=None, gt=0, alias="REPLY_DEADLINE_SECONDS")
    reply_backoff_base_seconds: float = Field(default=0.5, gt=0, alias="REPLY_BACKOFF_BASE_SECONDS")
    reply_backoff_max_seconds: float = Field(default=30.0, gt=0, alias="REPLY_BACKOFF_MAX_SECONDS")
    # A reply whose fate is unknown (a crash while sending, an answer lost on the way back)
    # counts as sent when its echo arrives within this wait; otherwise REPLY_GUARANTEE decides.
    reply_echo_wait_seconds: float = Field(default=10.0, ge=0, alias="REPLY_ECHO_WAIT_SECONDS")
    reply_guarantee: Literal["at_least_once", "at_most_once"] = Field(
        default="at_least_once", alias="REPLY_GUARANTEE"
    )
    # Whether the app subscribes to message_echoes; without echoes nothing can be settled by
    # its echo, so the bot warns at start-up and applies REPLY_GUARANTEE at once.
    echoes_subscribed: bool = Field(default=True, alias="MESSENGER_ECHOES_SUBSCRIBED")
    # Events in progress never drop below this while the event loop lags (acks first, but
    # the backlog keeps moving). Near full load the loop lags most of the time, so this is
    # what runs then: an event in progress mostly waits about 13 ms for its commit, so 16
    # carry about 1,200-1,350 events/s on the bench's core. 24-28 carried 1,500-1,700/s but,
    # as a fixed floor, put the 4,000/s flood's p99 answer at 3.5-6.7 s instead of under 1 s
    # (bench/README.md, "2026-11-30 late evening"); see the catch-up floor below.
    worker_min_concurrency: int = Field(default=16, ge=1, alias="WORKER_MIN_CONCURRENCY")
    # Opt-in: the floor while the workers fall behind a load the core could carry (the limit
    # full, arrivals under 1.5x what finishes, no refusal for 10 s, acks not slow;
    # bot.worker_limit). 28 on the bench's core: offered 1,900 events/s while the core was
    # fast it replied 1,892-1,938/s where 16 alone fell to 1,134-1,354/s and refused
    # thousands, and the 4,000/s flood's answers stayed as fast; but while the core was slow
    # it gained little and put the p99 ack near capacity at 43-126 ms instead of 33-51 ms
    # (bench/README.md, "2026-11-30 at 22:00"). Off by default: the acks' 50 ms target
    # comes first. At most WORKER_MIN_CONCURRENCY (0, the default) turns it off.
    worker_catch_up_concurrency: int = Field(default=0, ge=0, alias="WORKER_CATCH_UP_CONCURRENCY")
    # While the edge refuses a flood, events in progress never drop below this (nor below
    # WORKER_MIN_CONCURRENCY): the replies keep their pace and the cheap 503s share the rest
    # of the core. Higher gives the flood's replies more of the core and its answers less: at
    # 4,000 POSTs/s on a slow core, 32 (half the ceiling, the old default) put the p99 answer at
    # 1.5-5.0 s, 16 at 0.6-0.75 s for about a tenth fewer replies/s (bench/README.md,
    # "2026-12-02 at 13:30").
    worker_overload_concurrency: int = Field(default=16, ge=1, alias="WORKER_OVERLOAD_CONCURRENCY")
    # The ack budget: how much slower than the fastest recent ack an ack may get before fewer
    # events run at once (bot.worker_limit). The ack's wait for its commit is left out: the
    # disk's pace does not depend on how many events are in progress.
    ack_budget_seconds: float = Field(default=0.010, gt=0, alias="ACK_BUDGET_SECONDS")
    # The reply SLO's threshold: an event owing a reply is missed when this passes first.
    reply_slo_seconds: float = Field(default=5.0, gt=0, alias="REPLY_SLO_SECONDS")

    # --- Messaging window ---
    window_seconds: float = Field(default=24 * 3600, alias="MESSAGING_WINDOW_SECONDS")
    human_agent_window_seconds: float = Field(
        default=7 * 24 * 3600, alias="HUMAN_AGENT_WINDOW_SECONDS"
    )

    # --- Human handoff (bot.handoff): the app agents answer in; default Meta's Page Inbox ---
    handoff_app_id: str = Field(default="263902037430900", alias="HANDOFF_APP_ID")

    # --- Tracing (exporters, sampler and resource come from the standard OTEL_* variables) ---
    # User ids (PSIDs) in span attributes: "hashed" (user.hash) or "raw" (user.id).
    trace_user_ids: Literal["hashed", "raw"] = Field(default="hashed", alias="TRACE_USER_IDS")

    # --- Logging ---
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", alias="LOG_LEVEL"
    )

    @field_validator("inbox_synchronous", "log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        # Accept "normal" or "debug" as written in a shell; the Literal then refuses the unknown.
        return value.upper() if isinstance(value, str) else value

    @field_validator("inbox_backend", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> BotSettings:
        if self.redis_claim_interval_seconds * 2 > self.redis_lease_seconds:
            raise ValueError(
                "REDIS_CLAIM_INTERVAL_SECONDS must be at most half of REDIS_LEASE_SECONDS"
            )
        return self

    def app_secrets(self) -> list[bytes]:
        """Secrets accepted for signatures, current first (two during a rotation)."""
        secrets = [self.app_secret.get_secret_value()]
        if self.app_secret_previous.get_secret_value():
            secrets.append(self.app_secret_previous.get_secret_value())
        return [s.encode() for s in secrets]

    def page_token_map(self) -> dict[str, str]:
        """Page id -> page access token; the default page is always present when set."""
        tokens: dict[str, str] = {}
        raw = self.page_tokens.get_secret_value().strip()
        for pair in filter(None, (p.strip() for p in raw.split(","))):
            page, _, token = pair.partition("=")
            if page and token:
                tokens[page.strip()] = token.strip()
        if self.page_id:
            tokens.setdefault(self.page_id, self.page_access_token.get_secret_value())
        return tokens

    def send_api_url(self, page_id: str) -> str:
        """The Send API URL for one page (no token in it: the token travels separately)."""
        return f"{self.graph_api_base.rstrip('/')}/{self.graph_api_version}/{page_id}/messages"
