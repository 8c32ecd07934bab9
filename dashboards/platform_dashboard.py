"""The platform dashboard (uid ``messenger-platform``) for load-test runs.

Everything here comes from the mock's own metrics (``mock_meta/metrics.py``): what "Meta"
saw of the bot — deliveries against the 5 s timeout, retries, subscriptions disabled after
an hour of failures, Send API calls by error code and the platform-side time to first reply.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from dashboards.panels import (
    EVENTS_PER_SECOND,
    RATE,
    PanelBuilder,
    Target,
    bot_job_variable,
    dashboard_links,
    quantiles,
    sel,
    stat_panel,
    timeseries,
    variables,
    with_sections,
)

UID = "messenger-platform"
TITLE = "Messenger platform (mock)"

DELIVERIES = "mock_meta_delivery_attempts_total"
NOT_SUCCESS = 'outcome!="success"'
DISABLED = 'state="disabled"'
REPLY_FAST = 'le=~"5(\\\\.0)?"'
# Alert levels, as in rules/platform.rules.yml; 5 s is Meta's delivery timeout.
DELIVERY_FAILURE_STEPS = ((0.1, "orange"),)
TIMEOUT_STEPS = ((5.0, "red"),)
# The bot's own ack histogram, selected by the bot_job variable (job lists the mock's jobs).
BOT_WEBHOOK = 'job=~"$bot_job", http_route="/webhook", http_request_method="POST"'


def _rate(metric: str, *matchers: str) -> str:
    return f"rate({metric}{sel(*matchers)}[{RATE}])"


def _delivery() -> list[PanelBuilder]:
    return [
        timeseries(
            "Delivery attempts by outcome",
            "Webhook POSTs the platform made per second: success (200 in time), http_error, "
            "timeout (no answer within the delivery timeout) and connection_error.",
            "reqps",
            [Target(f"sum by (outcome) ({_rate(DELIVERIES)})", "{{outcome}}")],
            stacked=True,
            width=8,
        ),
        timeseries(
            "Delivery attempts by attempt number",
            "Attempt 1 is the first try; 2 and above are the platform's retries.",
            "reqps",
            [Target(f"sum by (attempt) ({_rate(DELIVERIES)})", "attempt {{attempt}}")],
            stacked=True,
            width=8,
        ),
        timeseries(
            "Delivery failure ratio",
            "Failed attempts over all attempts (warning 10 %). Meta alerts the developer "
            "after 15 min of failures and disables the subscription after 1 h.",
            "percentunit",
            [
                Target(
                    f"sum({_rate(DELIVERIES, NOT_SUCCESS)}) / sum({_rate(DELIVERIES)})",
                    "failed / all",
                )
            ],
            thresholds=DELIVERY_FAILURE_STEPS,
            alerts=("MetaWebhookDeliveryFailing",),
            width=8,
        ),
        timeseries(
            "Delivery duration vs the 5 s timeout",
            "p50/p90/p99 from sending a webhook POST to the bot's answer, against Meta's "
            "5 s timeout.",
            "s",
            quantiles("mock_meta_delivery_duration_seconds"),
            thresholds=TIMEOUT_STEPS,
            width=8,
        ),
        timeseries(
            "Ack latency: as Meta sees it vs as the bot measures it",
            "p99 of the platform's delivery duration next to the bot's own /webhook ack p99. "
            "A gap means time the bot cannot see: requests waiting for a blocked event loop "
            "or for the CPU before its clock starts (see the bot's event-loop lag).",
            "s",
            [
                Target(
                    "histogram_quantile(0.99, sum by (le) "
                    f"({_rate('mock_meta_delivery_duration_seconds_bucket')}))",
                    "Meta-observed p99",
                ),
                Target(
                    "histogram_quantile(0.99, sum by (le) (rate("
                    f"http_server_request_duration_seconds_bucket{{{BOT_WEBHOOK}}}[{RATE}])))",
                    "bot-measured p99",
                ),
            ],
            thresholds=TIMEOUT_STEPS,
            width=8,
        ),
        timeseries(
            "Retry backlog",
            "Deliveries waiting for a retry.",
            "short",
            [Target(f"sum(mock_meta_delivery_retry_backlog{sel()})", "waiting")],
            width=8,
        ),
        timeseries(
            "Deliveries dropped by reason",
            "Deliveries abandoned because the subscription was disabled or the event expired.",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (reason) ({_rate('mock_meta_deliveries_dropped_total')})",
                    "{{reason}}",
                )
            ],
            width=8,
        ),
    ]


def _subscriptions() -> list[PanelBuilder]:
    return [
        stat_panel(
            "Disabled subscriptions",
            "Page subscriptions the platform disabled after an hour of failed deliveries. "
            "Re-subscribe with POST /{page-id}/subscribed_apps once the bot is fixed.",
            "short",
            Target(f"sum(mock_meta_page_subscriptions{sel(DISABLED)})"),
            thresholds=((1.0, "red"),),
            alerts=("MetaWebhooksDisabled",),
            width=6,
            height=8,
        ),
        timeseries(
            "Page subscriptions by state",
            "Page-level app subscriptions, active or disabled.",
            "short",
            [Target(f"sum by (state) (mock_meta_page_subscriptions{sel()})", "{{state}}")],
            width=9,
        ),
        timeseries(
            "Developer alerts",
            "Developer alerts raised per interval: failing_15m after 15 min of failures, "
            "webhooks_disabled at 1 h.",
            "short",
            [
                Target(
                    f"sum by (kind) (increase(mock_meta_developer_alerts_total{sel()}[{RATE}]))",
                    "{{kind}}",
                )
            ],
            width=9,
        ),
    ]


def _send_api() -> list[PanelBuilder]:
    return [
        timeseries(
            "Send API calls by error code",
            "Send API calls the platform received per second, by the Graph error code it "
            "answered (none = success).",
            "reqps",
            [
                Target(
                    f"sum by (error_code) ({_rate('mock_meta_send_api_requests_total')})",
                    "{{error_code}}",
                )
            ],
            stacked=True,
            width=8,
        ),
        timeseries(
            "Rate-limit hits",
            "Send API calls refused with code 613 by the per-page rate limiter.",
            "reqps",
            [Target(f"sum({_rate('mock_meta_rate_limit_hits_total')})", "613")],
            width=8,
        ),
        timeseries(
            "Send API answer time",
            "p50/p90/p99 time the platform took to answer a Send API call, including "
            "injected latency.",
            "s",
            quantiles("mock_meta_send_api_request_duration_seconds"),
            width=8,
        ),
    ]


def _users() -> list[PanelBuilder]:
    ttfr = "mock_meta_time_to_first_reply_seconds"
    return [
        timeseries(
            "User actions by type",
            "Actions of simulated users per second (each produces a webhook event).",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (event_type) ({_rate('mock_meta_user_actions_total')})",
                    "{{event_type}}",
                )
            ],
            stacked=True,
            width=6,
        ),
        timeseries(
            "Time to first reply (platform side)",
            "p50/p95/p99 from a user's action to the bot's first Send API message to that "
            "user, as the platform sees it (SLO: 99 % within 5 s).",
            "s",
            [
                Target(
                    f"histogram_quantile({q}, sum by (le) ({_rate(f'{ttfr}_bucket')}))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            thresholds=TIMEOUT_STEPS,
            width=6,
        ),
        timeseries(
            "Replies within 5 s (platform side)",
            "Share of first replies the platform saw within 5 s of the user's action.",
            "percentunit",
            [
                Target(
                    f"sum({_rate(f'{ttfr}_bucket', REPLY_FAST)}) / sum({_rate(f'{ttfr}_count')})",
                    "within 5 s",
                )
            ],
            thresholds=((0.99, "green"),),
            base_color="red",
            max_value=1.0,
            width=6,
        ),
        timeseries(
            "Journal entries dropped",
            "Journal entries dropped by the retention limit, per second; the control API's "
            "journal is incomplete while this is above zero.",
            EVENTS_PER_SECOND,
            [Target(f"sum({_rate('mock_meta_journal_dropped_total')})", "dropped")],
            width=6,
        ),
    ]


def build(runbook_base: str) -> dash.Dashboard:
    """The platform dashboard builder."""
    board = (
        dash.Dashboard(TITLE)
        .uid(UID)
        .description(
            "The mock Messenger Platform during load tests: deliveries, retries, "
            "subscriptions, Send API and time to first reply."
        )
        .tags(["messenger", "mock-meta", "load-test"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .variables(
            [*variables("mock_meta_delivery_attempts_total", runbook_base), bot_job_variable()]
        )
        .links(dashboard_links("messenger-bot", "Messenger bot"))
    )
    sections = (
        ("Webhook delivery", _delivery()),
        ("Subscriptions and developer alerts", _subscriptions()),
        ("Send API (platform side)", _send_api()),
        ("Users and replies", _users()),
    )
    return with_sections(board, sections)
