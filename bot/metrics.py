"""Every Prometheus metric the bot exports, built on a registry the caller passes in.

Names follow Prometheus conventions (base units, ``_total``, ``bot_`` prefix); the HTTP
histogram uses OpenTelemetry's semantic-convention name as Prometheus spells it. Labels are
closed enums only: never a PSID, page id, mid, URL or token. The dashboards and alert rules in
``dashboards/`` depend on these names; ``tests`` check that every name they use is exported.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot import __version__
from bot.event_time import TimeFix
from bot.events import EventKind

# OTel advisory buckets for HTTP durations; 5 s is Meta's ack budget, 1 s and 2.5 s alert levels.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Time to first reply: the SLO threshold is 5 s (see dashboards/rules).
REPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Event-loop lag: 0.25 s is the alert's level, 5 s Meta's whole ack budget.
LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Each event that owes a reply counts once toward the reply SLO (see bot/reply_slo.py).
REPLY_SLO_RESULTS = ("met", "missed")

HANDSHAKE_RESULTS = ("success", "token_mismatch", "bad_mode", "missing_params")
SIGNATURE_FAILURE_REASONS = ("missing", "malformed", "mismatch")
REJECT_REASONS = (
    "too_large",
    "bad_signature",
    "invalid_json",
    "bad_shape",
    "wrong_object",
    "too_many_events",
)
# Hardening (bot/http_guard.py, bot/event_time.py): why a connection was cut, why a timestamp moved.
EDGE_CLOSE_REASONS = ("header_too_large", "header_timeout", "body_timeout", "evicted", "refused")
# Admission control (bot/admission.py): why a webhook POST got a fast 503.
REFUSE_REASONS = ("overloaded",)
ENGINE_LANES = ("events", "outbox")
TIMESTAMP_FIXES = tuple(fix.value for fix in TimeFix)
PROCESS_OUTCOMES = ("handled", "unhandled", "failed", "dead_lettered")
# Graph error codes we name; anything else is "other". "none" is success, "network" and
# "timeout" have no Graph code, "http_5xx"/"http_4xx" are answers without a Graph envelope.
SEND_ERROR_CODES = (
    "none",
    "1",
    "2",
    "4",
    "10",
    "17",
    "32",
    "100",
    "190",
    "200",
    "368",
    "551",
    "613",
    "1200",
    "2018001",
    "2018278",
    "80001",
    "80006",
    "network",
    "timeout",
    "http_5xx",
    "http_4xx",
    "other",
    # The request went out but its answer was lost (reset, unreadable 2xx, cancelled batch),
    # or the call could not be encoded at all.
    "reset",
    "malformed",
    "cancelled",
    "unencodable",
)
# "uncertain_error": the call may have been delivered (ErrorClass.RISKY).
SEND_OUTCOMES = ("success", "transient_error", "permanent_error", "uncertain_error")
DROP_REASONS = (
    "outside_window",
    "permanent_error",
    "retries_exhausted",
    "no_token",
    "no_recipient",
    "uncertain",
)
SETTLEMENT_OUTCOMES = ("echo", "resent", "dropped")
SETTLED_STATES = ("sent", "dropped", "dead")
INBOX_WRITES = ("commit", "reply_state")
SHARD_CLAIM_OUTCOMES = ("gained", "lost", "released")


class BotMetrics:
    """The bot's instruments, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http_request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.http_active_requests = Gauge(
            "http_server_active_requests",
            "Number of HTTP server requests in flight.",
            ["http_request_method"],
            registry=registry,
        )
        self.handshakes = Counter(
            "bot_webhook_verifications_total",
            "Webhook verification (GET handshake) attempts by result.",
            ["result"],
            registry=registry,
        )
        self.signature_failures = Counter(
            "bot_webhook_signature_failures_total",
            "Webhook POSTs rejected for their X-Hub-Signature-256, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rejected = Counter(
            "bot_webhook_requests_rejected_total",
            "Webhook POSTs answered with a 4xx, by reason.",
            ["reason"],
            registry=registry,
        )
        self.edge_closes = Counter(
            "bot_http_connections_closed_total",
            "Connections the HTTP edge cut for a limit (header size or time, body time, the cap).",
            ["reason"],
            registry=registry,
        )
        self.webhook_refused = Counter(
            "bot_webhook_refused_total",
            "Webhook POSTs refused with a 503 before their body was read (admission control).",
            ["reason"],
            registry=registry,
        )
        self.webhook_backlog = Gauge(
            "bot_webhook_backlog_events",
            "Events acked and not yet finished, as the admission gate last sampled them.",
            registry=registry,
        )
        self.webhook_backlog_limit = Gauge(
            "bot_webhook_backlog_limit_events",
            "The backlog above which webhook POSTs are refused (seconds of the finishing rate).",
            registry=registry,
        )
        self.webhook_reply_backlog = Gauge(
            "bot_webhook_reply_backlog_replies",
            "Replies committed, not yet settled and not held up by a wait on Graph or an echo "
            "(those the admission gate counts), as it last sampled them.",
            registry=registry,
        )
        self.webhook_reply_backlog_limit = Gauge(
            "bot_webhook_reply_backlog_limit_replies",
            "The reply backlog above which webhook POSTs are refused (seconds of the rate "
            "at which replies settle).",
            registry=registry,
        )
        self.timestamps_adjusted = Counter(
            "bot_event_timestamps_adjusted_total",
            "Event timestamps normalised at the edge: seconds to ms, future clamped, or replaced "
            "by the arrival time (missing, zero or not a number).",
            ["reason"],
            registry=registry,
        )
        self.events_received = Counter(
            "bot_webhook_events_received_total",
            "Events accepted into the inbox, by kind.",
            ["event_type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "bot_events_duplicate_total",
            "Events skipped because an event with the same identity was already stored.",
            ["event_type"],
            registry=registry,
        )
        self.echoes_ignored = Counter(
            "bot_echoes_ignored_total",
            "Message echoes (the page's own messages) that produced no reply.",
            registry=registry,
        )
        self.inbox_batch_size = Histogram(
            "bot_inbox_commit_batch_events",
            "Events written per inbox commit (group commit).",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=registry,
        )
        self.inbox_depth = Gauge(
            "bot_inbox_pending_events",
            "Events stored in the inbox and not yet processed.",
            registry=registry,
        )
        self.inbox_oldest_age = Gauge(
            "bot_inbox_oldest_pending_age_seconds",
            "Age of the oldest pending event in the inbox (0 when empty).",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "bot_inbox_wait_seconds",
            "Time from the edge accepting an event to a worker starting it.",
            buckets=(*HANDLER_BUCKETS, 30.0, 60.0),
            registry=registry,
        )
        self.handler_duration = Histogram(
            "bot_handler_duration_seconds",
            "Time spent processing one event (handler and its sends), by kind.",
            ["event_type"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.events_processed = Counter(
            "bot_events_processed_total",
            "Events finished by the workers, by kind and outcome.",
            ["event_type", "outcome"],
            registry=registry,
        )
        self.handler_retries = Counter(
            "bot_handler_retries_total",
            "Handler failures that were scheduled for another attempt.",
            ["event_type"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "bot_dead_letters_total",
            "Events moved to the dead-letter store after their last failed attempt.",
            ["event_type"],
            registry=registry,
        )
        self.dead_letters_stored = Gauge(
            "bot_dead_letter_events",
            "Events currently in the dead-letter store.",
            registry=registry,
        )
        self.last_processed = Gauge(
            "bot_last_processed_timestamp_seconds",
            "Wall-clock time the workers last finished an event.",
            registry=registry,
        )
        self.workers_busy = Gauge(
            "bot_workers_busy",
            "Events being processed right now.",
            registry=registry,
        )
        # Both read at scrape time from the engine (Gauge.set_function): no hot-path cost.
        self.events_in_progress = Gauge(
            "bot_events_in_progress",
            "Events started and not finished: in their handler or waiting for their commit.",
            registry=registry,
        )
        self.worker_limit = Gauge(
            "bot_worker_limit_events",
            "Events allowed in progress now: the adaptive limit between WORKER_MIN_CONCURRENCY "
            "(WORKER_OVERLOAD_CONCURRENCY while the edge refuses) and WORKER_CONCURRENCY, "
            "lowered while the event loop lags or acks slow down.",
            registry=registry,
        )
        self.send_requests = Counter(
            "bot_send_api_requests_total",
            "Send API calls by outcome and Graph error code.",
            ["outcome", "error_code"],
            registry=registry,
        )
        self.send_duration = Histogram(
            "bot_send_api_request_duration_seconds",
            "Duration of one Send API call (one attempt).",
            ["outcome"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.send_retries = Counter(
            "bot_send_api_retries_total",
            "Send API attempts retried after a transient failure, by error code.",
            ["error_code"],
            registry=registry,
        )
        self.replies_dropped = Counter(
            "bot_replies_dropped_total",
            "Replies that were not delivered, by reason.",
            ["reason"],
            registry=registry,
        )
        self.time_to_first_reply = Histogram(
            "bot_time_to_first_reply_seconds",
            "From the user's event timestamp to the first successful Send API call for it.",
            buckets=REPLY_BUCKETS,
            registry=registry,
        )
        self.reply_settlements = Counter(
            "bot_reply_settlements_total",
            "Replies of unknown fate (crash while sending, lost answer) settled, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.replies_settled = Counter(
            "bot_replies_settled_total",
            "Outbox replies that reached a final state: sent, dropped or dead (undeliverable).",
            ["state"],
            registry=registry,
        )
        self.replies_undeliverable = Counter(
            "bot_replies_undeliverable_total",
            "Replies dead-lettered as undeliverable (refused, or Graph down past the deadline).",
            registry=registry,
        )
        self.step_failures = Counter(
            "bot_step_failures_total",
            "Engine steps that raised unexpectedly (a store down, a bug), by lane (events, "
            "outbox); the event or reply stays live and tries again after a back-off.",
            ["lane"],
            registry=registry,
        )
        self.inbox_write_retries = Counter(
            "bot_inbox_write_retries_total",
            "Engine writes to the inbox that failed and were retried (disk full, locked...).",
            ["write"],
            registry=registry,
        )
        self.event_loop_lag = Histogram(
            "bot_event_loop_lag_seconds",
            "How late a periodic timer fired on the event loop: what every request waited.",
            buckets=LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.reply_slo_events = Counter(
            "bot_reply_slo_events_total",
            "Events owing a reply: met (first reply within the SLO) or missed (the SLO passed"
            " first, counted when it passed).",
            ["result"],
            registry=registry,
        )
        # Redis inbox shards (INBOX_BACKEND=redis; docs/scaling.md). ``shard`` is the shard
        # index, bounded by REDIS_SHARDS; every replica reports every shard's lag.
        self.shards_owned = Gauge(
            "bot_shards_owned", "Shards this replica holds the lease of.", registry=registry
        )
        self.shard_owned = Gauge(
            "bot_shard_owned", "1 while this replica owns the shard.", ["shard"], registry=registry
        )
        self.shard_claims = Counter(
            "bot_shard_claims_total",
            "Shard lease changes of this replica (gained, lost to another, released).",
            ["outcome"],
            registry=registry,
        )
        self.shard_pending = Gauge(
            "bot_shard_pending_events",
            "Events stored and not handled yet in the shard (its consumer lag).",
            ["shard"],
            registry=registry,
        )
        self.shard_oldest_age = Gauge(
            "bot_shard_oldest_pending_age_seconds",
            "Age of the shard's oldest pending event (0 when none).",
            ["shard"],
            registry=registry,
        )
        self.replicas_live = Gauge(
            "bot_replicas_live", "Replicas with a recent heartbeat in Redis.", registry=registry
        )
        self.build_info = Gauge(
            "bot_build_info",
            "Build information; the value is always 1.",
            ["version", "python_version"],
            registry=registry,
        )
        self.build_info.labels(version=__version__, python_version=platform.python_version()).set(1)
        self._initialise_series()

    def _initialise_series(self) -> None:
        # Pre-create known label sets so rate() and ratios are 0, not empty, before traffic.
        for result in HANDSHAKE_RESULTS:
            self.handshakes.labels(result=result)
        for reason in SIGNATURE_FAILURE_REASONS:
            self.signature_failures.labels(reason=reason)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)
        for reason in EDGE_CLOSE_REASONS:
            self.edge_closes.labels(reason=reason)
        for reason in REFUSE_REASONS:
            self.webhook_refused.labels(reason=reason)
        for reason in TIMESTAMP_FIXES:
            self.timestamps_adjusted.labels(reason=reason)
        for kind in EventKind:
            self.events_received.labels(event_type=kind.value)
            self.duplicates.labels(event_type=kind.value)
            self.dead_letters.labels(event_type=kind.value)
            self.handler_retries.labels(event_type=kind.value)
            for outcome in PROCESS_OUTCOMES:
                self.events_processed.labels(event_type=kind.value, outcome=outcome)
        for outcome in SEND_OUTCOMES:
            self.send_requests.labels(
                outcome=outcome, error_code="none" if outcome == "success" else "other"
            )
        self.send_retries.labels(error_code="other")
        for reason in DROP_REASONS:
            self.replies_dropped.labels(reason=reason)
        for outcome in SETTLEMENT_OUTCOMES:
            self.reply_settlements.labels(outcome=outcome)
        for state in SETTLED_STATES:
            self.replies_settled.labels(state=state)
        for write in INBOX_WRITES:
            self.inbox_write_retries.labels(write=write)
        for lane in ENGINE_LANES:
            self.step_failures.labels(lane=lane)
        for result in REPLY_SLO_RESULTS:
            self.reply_slo_events.labels(result=result)
        for outcome in SHARD_CLAIM_OUTCOMES:
            self.shard_claims.labels(outcome=outcome)


def error_code_label(code: int | str | None) -> str:
    """Map a Graph error code (or a transport failure name) to a bounded label value."""
    if code is None:
        return "none"
    text = str(code)
    return text if text in SEND_ERROR_CODES else "other"
