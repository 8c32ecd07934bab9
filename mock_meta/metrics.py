"""Prometheus metrics of the fake platform itself (``mock_meta_`` prefix).

Labels are closed enums: outcome, attempt bucket, error code, event type, state. The
platform dashboard and the load tests read these names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 5 s is Meta's delivery timeout: the bucket edge lets dashboards show "time to 200 vs timeout".
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
REPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

DELIVERY_OUTCOMES = ("success", "http_error", "timeout", "connection_error")
ATTEMPT_LABELS = ("1", "2", "3", "4", "5+")
SEND_ERROR_CODES = (
    "none",
    "1",
    "2",
    "4",
    "10",
    "100",
    "190",
    "200",
    "551",
    "613",
    "1200",
    "2018001",
    "2018278",
    "80006",
    "other",
)


def attempt_label(attempt: int) -> str:
    """Bucket an attempt number (1-based) into a bounded label value."""
    return str(attempt) if attempt < 5 else "5+"


def send_error_code_label(code: int | None) -> str:
    if code is None:
        return "none"
    return str(code) if str(code) in SEND_ERROR_CODES else "other"


class MockMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.user_actions = Counter(
            "mock_meta_user_actions_total",
            "Actions of simulated users that produce a webhook event, by event type.",
            ["event_type"],
            registry=registry,
        )
        self.deliveries = Counter(
            "mock_meta_delivery_attempts_total",
            "Webhook delivery attempts by outcome and attempt number.",
            ["outcome", "attempt"],
            registry=registry,
        )
        self.delivery_duration = Histogram(
            "mock_meta_delivery_duration_seconds",
            "Time from sending a webhook POST to the bot's answer (or the timeout).",
            ["outcome"],
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.retry_backlog = Gauge(
            "mock_meta_delivery_retry_backlog",
            "Webhook deliveries waiting for a retry.",
            registry=registry,
        )
        self.deliveries_dropped = Counter(
            "mock_meta_deliveries_dropped_total",
            "Webhook deliveries abandoned, by reason.",
            ["reason"],
            registry=registry,
        )
        self.page_subscriptions = Gauge(
            "mock_meta_page_subscriptions",
            "Page-level app subscriptions by state (active or disabled after an hour of failures).",
            ["state"],
            registry=registry,
        )
        self.developer_alerts = Counter(
            "mock_meta_developer_alerts_total",
            "Developer alerts raised, by kind (failing_15m, webhooks_disabled).",
            ["kind"],
            registry=registry,
        )
        self.send_api_requests = Counter(
            "mock_meta_send_api_requests_total",
            "Send API calls received, by Graph error code ('none' for success).",
            ["error_code"],
            registry=registry,
        )
        self.send_api_duration = Histogram(
            "mock_meta_send_api_request_duration_seconds",
            "Time the mock took to answer a Send API call (including armed latency).",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.rate_limit_hits = Counter(
            "mock_meta_rate_limit_hits_total",
            "Send API calls refused with 613 by the per-page rate limiter.",
            registry=registry,
        )
        self.time_to_first_reply = Histogram(
            "mock_meta_time_to_first_reply_seconds",
            "Platform side: from a user's action to the bot's first Send API message to that user.",
            buckets=REPLY_BUCKETS,
            registry=registry,
        )
        self.journal_dropped = Counter(
            "mock_meta_journal_dropped_total",
            "Journal entries dropped by the retention limit.",
            registry=registry,
        )
        for outcome in DELIVERY_OUTCOMES:
            for attempt in ATTEMPT_LABELS:
                self.deliveries.labels(outcome=outcome, attempt=attempt)
        for state in ("active", "disabled"):
            self.page_subscriptions.labels(state=state)
        for kind in ("failing_15m", "webhooks_disabled"):
            self.developer_alerts.labels(kind=kind)
        for reason in ("unsubscribed", "expired"):
            self.deliveries_dropped.labels(reason=reason)
        self.send_api_requests.labels(error_code="none")
