"""The bot's dashboard (uid ``messenger-bot``) for production SREs.

RED for the webhook edge on top, then events, the inbox and workers, the Send API and the
time-to-first-reply SLO. Thresholds sit at the levels of ``rules/bot.rules.yml``; a test
checks that they agree.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from dashboards.panels import (
    EVENTS_PER_SECOND,
    RATE,
    PanelBuilder,
    Target,
    dashboard_links,
    quantiles,
    sel,
    stat_panel,
    timeseries,
    variables,
    with_sections,
)

UID = "messenger-bot"
TITLE = "Messenger bot"

WEBHOOK = ('http_route="/webhook"',)
STATUS_5XX = 'http_response_status_code=~"5.."'
STATUS_NOT_2XX = 'http_response_status_code!~"2.."'
NOT_SUCCESS = 'outcome!="success"'
WEBHOOK_POST = ('http_route="/webhook"', 'http_request_method="POST"')
HTTP = "http_server_request_duration_seconds"
# The SLO: 99 % of events owing a reply answered within 5 s; the bot counts each such event
# once in bot_reply_slo_events_total, "missed" as soon as 5 s pass without a reply.
SLO = 0.99
SLO_MET = 'result="met"'

# Alert levels, as in rules/bot.rules.yml.
ACK_STEPS = ((1.0, "yellow"), (2.5, "orange"), (5.0, "red"))
WEBHOOK_ERROR_STEPS = ((0.05, "red"),)
SIGNATURE_STEPS = ((0.05, "orange"), (0.5, "red"))
SEND_ERROR_STEPS = ((0.1, "orange"), (0.5, "red"))
RETRY_STEPS = ((0.25, "orange"),)
BACKLOG_STEPS = ((60.0, "orange"), (600.0, "red"))
REPLY_STEPS = ((5.0, "red"),)
BURN_STEPS = ((1.0, "yellow"), (6.0, "orange"), (14.4, "red"))
LOOP_BLOCKED_STEPS = ((0.1, "orange"),)


def _rate(metric: str, *matchers: str) -> str:
    return f"rate({metric}{sel(*matchers)}[{RATE}])"


def _slo_ratio() -> str:
    return (
        f"sum({_rate('bot_reply_slo_events_total', SLO_MET)})"
        f" / sum({_rate('bot_reply_slo_events_total')})"
    )


def _webhook_5xx_ratio() -> str:
    errors = f"sum({_rate(f'{HTTP}_count', *WEBHOOK, STATUS_5XX)})"
    return f"({errors} or vector(0)) / sum({_rate(f'{HTTP}_count', *WEBHOOK)})"


def _overview() -> list[PanelBuilder]:
    return [
        stat_panel(
            "Webhook POSTs",
            "Event notifications Meta delivered per second.",
            "reqps",
            Target(f"sum({_rate(f'{HTTP}_count', *WEBHOOK_POST)})"),
        ),
        stat_panel(
            "Webhook 5xx ratio",
            "Share of /webhook answers that were 5xx. Meta retries them, alerts the developer "
            "after 15 min and unsubscribes the app from the Page after 1 h of failures.",
            "percentunit",
            Target(_webhook_5xx_ratio()),
            thresholds=WEBHOOK_ERROR_STEPS,
            alerts=("BotWebhookErrors",),
        ),
        stat_panel(
            "Ack latency p99",
            "p99 time to answer a webhook POST. Meta's budget is 5 s; warning at 1 s, "
            "critical at 2.5 s.",
            "s",
            quantiles(HTTP, WEBHOOK_POST)[2],
            thresholds=ACK_STEPS,
            alerts=("BotWebhookAckLatencyHigh",),
        ),
        stat_panel(
            "Replies within 5 s",
            "Share of events owing a reply that got it within 5 s of the user's event (SLO "
            "99 %); an event still unanswered after 5 s counts as missed.",
            "percentunit",
            Target(_slo_ratio()),
            thresholds=((SLO, "green"),),
            base_color="red",
            alerts=("BotReplyErrorBudgetBurn",),
        ),
        stat_panel(
            "Oldest pending event",
            "Age of the oldest event waiting in the inbox (0 when empty).",
            "s",
            Target(f"max(bot_inbox_oldest_pending_age_seconds{sel()})"),
            thresholds=BACKLOG_STEPS,
            alerts=("BotInboxBacklogStale",),
        ),
        stat_panel(
            "Dead letters stored",
            "Events in the dead-letter store, waiting for `messenger-bot dead-letters replay`.",
            "short",
            Target(f"sum(bot_dead_letter_events{sel()})"),
            thresholds=((1.0, "orange"),),
            alerts=("BotDeadLetters",),
        ),
    ]


def _ingest() -> list[PanelBuilder]:
    return [
        timeseries(
            "Webhook requests by status",
            "Requests to /webhook per second by method and status code "
            "(GET is the verification handshake).",
            "reqps",
            [
                Target(
                    "sum by (http_request_method, http_response_status_code) "
                    f"({_rate(f'{HTTP}_count', *WEBHOOK)})",
                    "{{http_request_method}} {{http_response_status_code}}",
                )
            ],
            stacked=True,
        ),
        timeseries(
            "Webhook error ratio by status",
            "Share of /webhook answers that were not 2xx, by status. 5xx and timeouts count "
            "as failed deliveries for Meta; 4xx are usually bad signatures or payloads.",
            "percentunit",
            [
                Target(
                    "sum by (http_response_status_code) "
                    f"({_rate(f'{HTTP}_count', *WEBHOOK, STATUS_NOT_2XX)})"
                    " / ignoring (http_response_status_code) group_left "
                    f"sum({_rate(f'{HTTP}_count', *WEBHOOK)})",
                    "{{http_response_status_code}}",
                )
            ],
            thresholds=WEBHOOK_ERROR_STEPS,
            alerts=("BotWebhookErrors",),
            may_be_empty=True,
        ),
        timeseries(
            "Webhook ack latency",
            "p50/p90/p99 time to answer a webhook POST against Meta's 5 s budget "
            "(warning 1 s, critical 2.5 s). Exemplars link to traces when enabled.",
            "s",
            quantiles(HTTP, WEBHOOK_POST),
            thresholds=ACK_STEPS,
            alerts=("BotWebhookAckLatencyHigh",),
            exemplars=True,
        ),
        timeseries(
            "Requests in flight",
            "HTTP requests being served right now, by method.",
            "short",
            [
                Target(
                    f"sum by (http_request_method) (http_server_active_requests{sel()})",
                    "{{http_request_method}}",
                )
            ],
            width=6,
        ),
        timeseries(
            "Rejected webhook POSTs by reason",
            "POSTs answered with a 4xx per second: too_large, bad_signature, invalid_json, "
            "bad_shape, wrong_object. Meta's own deliveries should never land here.",
            "reqps",
            [
                Target(
                    f"sum by (reason) ({_rate('bot_webhook_requests_rejected_total')})",
                    "{{reason}}",
                )
            ],
            width=6,
        ),
        timeseries(
            "Refused webhook POSTs (admission control)",
            "POSTs answered with a fast 503 + Retry-After because the backlog of acked, "
            "unfinished events passed WEBHOOK_BACKLOG_LIMIT_SECONDS of the finishing rate. "
            "Meta delivers them again; refusing for long (an hour) gets the subscription "
            "disabled: add capacity.",
            "reqps",
            [
                Target(
                    f"sum by (reason) ({_rate('bot_webhook_refused_total')})",
                    "{{reason}}",
                )
            ],
        ),
        timeseries(
            "Backlog against the admission limit",
            "Events acked and not handled, replies committed and not sent, and each one's "
            "bound. POSTs are refused once the two backlogs' shares of their bounds add up to "
            "one. Replies waiting on Graph or an echo (and those queued behind them in their "
            "conversation) are not counted.",
            "short",
            [
                Target(f"sum(bot_webhook_backlog_events{sel()})", "events"),
                Target(f"sum(bot_webhook_backlog_limit_events{sel()})", "events bound"),
                Target(f"sum(bot_webhook_reply_backlog_replies{sel()})", "replies"),
                Target(f"sum(bot_webhook_reply_backlog_limit_replies{sel()})", "replies bound"),
            ],
        ),
        timeseries(
            "Verification handshakes by result",
            "GET /webhook handshakes per second. token_mismatch means the verify token "
            "configured in the App Dashboard differs from MESSENGER_VERIFY_TOKEN.",
            "reqps",
            [
                Target(
                    f"sum by (result) ({_rate('bot_webhook_verifications_total')})",
                    "{{result}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Signature failures by reason",
            "POSTs rejected for X-Hub-Signature-256, per second. A jump in mismatch with "
            "real traffic usually means the app secret was rotated.",
            "reqps",
            [
                Target(
                    f"sum by (reason) ({_rate('bot_webhook_signature_failures_total')})",
                    "{{reason}}",
                )
            ],
            alerts=("BotWebhookSignatureFailures",),
            width=8,
        ),
        timeseries(
            "Signature failure ratio",
            "Signature failures over all /webhook requests (warning 5 %, critical 50 %).",
            "percentunit",
            [
                Target(
                    f"sum({_rate('bot_webhook_signature_failures_total')})"
                    f" / sum({_rate(f'{HTTP}_count', *WEBHOOK)})",
                    "signature failures",
                )
            ],
            thresholds=SIGNATURE_STEPS,
            alerts=("BotWebhookSignatureFailures",),
            width=8,
        ),
    ]


def _events() -> list[PanelBuilder]:
    return [
        timeseries(
            "Events received by kind",
            "Events accepted into the inbox per second, by kind.",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (event_type) ({_rate('bot_webhook_events_received_total')})",
                    "{{event_type}}",
                )
            ],
            stacked=True,
            width=8,
        ),
        timeseries(
            "Duplicates and echoes",
            "Redeliveries skipped by deduplication, by kind, and the page's own message "
            "echoes that produced no reply.",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (event_type) ({_rate('bot_events_duplicate_total')})",
                    "duplicate {{event_type}}",
                ),
                Target(f"sum({_rate('bot_echoes_ignored_total')})", "echoes ignored"),
            ],
            width=8,
        ),
        timeseries(
            "Processed events by outcome",
            "Events the workers finished per second: handled, unhandled (no handler), "
            "failed (will retry) and dead_lettered.",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (outcome) ({_rate('bot_events_processed_total')})",
                    "{{outcome}}",
                )
            ],
            stacked=True,
            width=8,
        ),
        timeseries(
            "Handler latency p95 by kind",
            "p95 time to process one event (handler plus its sends), by kind.",
            "s",
            [
                Target(
                    "histogram_quantile(0.95, sum by (event_type, le) "
                    f"({_rate('bot_handler_duration_seconds_bucket')}))",
                    "{{event_type}}",
                )
            ],
        ),
        timeseries(
            "Handler retries by kind",
            "Handler failures scheduled for another attempt, per second.",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (event_type) ({_rate('bot_handler_retries_total')})",
                    "{{event_type}}",
                )
            ],
            may_be_empty=True,
        ),
    ]


def _inbox() -> list[PanelBuilder]:
    return [
        timeseries(
            "Inbox depth and busy workers",
            "Events stored and not yet processed; events in progress (in their handler or "
            "waiting for their commit) against the adaptive worker limit, and those inside "
            "their handler right now. In progress pinned at the limit while pending grows: "
            "the limit, not the CPU, sets the pace (WORKER_MIN_CONCURRENCY under load; "
            "WORKER_OVERLOAD_CONCURRENCY while the edge refuses a flood; "
            "WORKER_CATCH_UP_CONCURRENCY, if set, while it falls behind a steady load).",
            "short",
            [
                Target(f"sum(bot_inbox_pending_events{sel()})", "pending"),
                Target(f"sum(bot_events_in_progress{sel()})", "in progress"),
                Target(f"sum(bot_worker_limit_events{sel()})", "worker limit"),
                Target(f"sum(bot_workers_busy{sel()})", "busy workers"),
            ],
            width=8,
        ),
        timeseries(
            "Oldest pending event age",
            "Age of the oldest pending event per instance (warning 60 s, critical 600 s). "
            "A rising line with flat depth means workers are stuck.",
            "s",
            [
                Target(
                    f"max by (instance) (bot_inbox_oldest_pending_age_seconds{sel()})",
                    "{{instance}}",
                )
            ],
            thresholds=BACKLOG_STEPS,
            alerts=("BotInboxBacklogStale",),
            width=8,
        ),
        timeseries(
            "Time since last processed event",
            "Seconds since the workers last finished an event, per instance; only alarming "
            "while events are pending.",
            "s",
            [
                Target(
                    f"time() - max by (instance) (bot_last_processed_timestamp_seconds{sel()})",
                    "{{instance}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Event-loop lag",
            "p50/p90/p99 of how late a 100 ms timer fired: what every ack and reply waited for "
            "the loop. The ack histogram cannot see this (its clock starts once the loop runs "
            "the request); a blocking handler (time.sleep inside async def) shows here.",
            "s",
            quantiles("bot_event_loop_lag_seconds"),
            thresholds=((0.25, "orange"),),
        ),
        timeseries(
            "Event loop blocked (share of time)",
            "Seconds of loop lag per second, per instance: the share of time requests waited "
            "for the loop. Warning above 10 %.",
            "percentunit",
            [
                Target(
                    f"sum by (instance) ({_rate('bot_event_loop_lag_seconds_sum')})",
                    "{{instance}}",
                )
            ],
            thresholds=LOOP_BLOCKED_STEPS,
            alerts=("BotEventLoopLagHigh",),
        ),
        timeseries(
            "Inbox wait",
            "p50/p90/p99 time from the edge accepting an event to a worker starting it.",
            "s",
            quantiles("bot_inbox_wait_seconds"),
        ),
        timeseries(
            "Dead letters",
            "Events moved to the dead-letter store after their last failed attempt, by kind "
            "(count per interval). Inspect with `messenger-bot dead-letters list`. "
            '"step failed": engine steps that raised outside a handler (a store down, a '
            "bug; the log has the traceback): that work backs off and tries again.",
            "short",
            [
                Target(
                    f"sum by (event_type) (increase(bot_dead_letters_total{sel()}[{RATE}]))",
                    "{{event_type}}",
                ),
                Target(
                    f"sum by (lane) (increase(bot_step_failures_total{sel()}[{RATE}]))",
                    "step failed: {{lane}}",
                ),
            ],
            thresholds=((1.0, "orange"),),
            alerts=("BotDeadLetters",),
        ),
    ]


def _shards() -> list[PanelBuilder]:
    """INBOX_BACKEND=redis only (docs/scaling.md); empty panels on a SQLite bot."""
    return [
        timeseries(
            "Shards owned per replica",
            "Shard leases each replica holds; a killed replica's shards move to the "
            "survivors within REDIS_LEASE_SECONDS plus one claim interval.",
            "short",
            [
                Target(f"sum by (instance) (bot_shards_owned{sel()})", "{{instance}}"),
                Target(
                    f"count(sum by (shard) (bot_shard_owned{sel()}) == 0)", "shards without owner"
                ),
            ],
            alerts=("BotShardWithoutOwner",),
            may_be_empty=True,  # no shard without owner, or a SQLite bot
            width=8,
        ),
        timeseries(
            "Shard lag (pending events)",
            "Events stored and not handled per shard: each shard's consumer lag.",
            "short",
            [Target(f"max by (shard) (bot_shard_pending_events{sel()})", "shard {{shard}}")],
            alerts=("BotShardLagGrowing",),
            may_be_empty=True,  # a SQLite bot has no shards
            width=8,
        ),
        timeseries(
            "Shard lease changes",
            "Leases gained, lost to another replica (a stall) and released at shutdown.",
            "short",
            [
                Target(
                    f"sum by (outcome) (increase(bot_shard_claims_total{sel()}[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            width=8,
        ),
    ]


def _send_api() -> list[PanelBuilder]:
    send = "bot_send_api_requests_total"
    return [
        timeseries(
            "Send API calls by outcome",
            "Send API calls per second by outcome.",
            "reqps",
            [Target(f"sum by (outcome) ({_rate(send)})", "{{outcome}}")],
            stacked=True,
            width=8,
        ),
        timeseries(
            "Send API error ratio by code",
            "Share of Send API calls that failed, by Graph error code (warning 10 %, "
            "critical 50 %). 190 = bad page token, 613/4/80006 = throttled, "
            "10/2018278 = outside the 24 h window, 551 = user unreachable.",
            "percentunit",
            [
                Target(
                    f"sum by (error_code) ({_rate(send, NOT_SUCCESS)})"
                    f" / ignoring (error_code) group_left sum({_rate(send)})",
                    "{{error_code}}",
                )
            ],
            thresholds=SEND_ERROR_STEPS,
            alerts=("BotSendApiErrors",),
            width=8,
        ),
        timeseries(
            "Send API latency",
            "p50/p90/p99 duration of one Send API attempt.",
            "s",
            quantiles("bot_send_api_request_duration_seconds"),
            exemplars=True,
            width=8,
        ),
        timeseries(
            "Send API retries by code",
            "Attempts retried after a transient failure, per second, by error code.",
            "reqps",
            [
                Target(
                    f"sum by (error_code) ({_rate('bot_send_api_retries_total')})",
                    "{{error_code}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Send API retry ratio",
            "Retries over Send API calls (warning 25 %): a retry storm adds load exactly "
            "when Graph is struggling or throttling.",
            "percentunit",
            [
                Target(
                    f"sum({_rate('bot_send_api_retries_total')}) / sum({_rate(send)})",
                    "retries / calls",
                )
            ],
            thresholds=RETRY_STEPS,
            alerts=("BotSendApiRetryStorm",),
            width=8,
        ),
        timeseries(
            "Replies dropped by reason",
            "Replies that were never delivered, per second. outside_window is the 24 h "
            "standard messaging window (code 10/2018278): expected, not retried.",
            EVENTS_PER_SECOND,
            [
                Target(
                    f"sum by (reason) ({_rate('bot_replies_dropped_total')})",
                    "{{reason}}",
                )
            ],
            stacked=True,
            width=8,
        ),
    ]


def _reply_slo() -> list[PanelBuilder]:
    return [
        timeseries(
            "Time to first reply",
            "p50/p95/p99 from the user's event timestamp to the first successful Send API "
            "call for it. The SLO is 99 % within 5 s.",
            "s",
            [
                Target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"({_rate('bot_time_to_first_reply_seconds_bucket')}))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            thresholds=REPLY_STEPS,
            alerts=("BotReplyErrorBudgetBurn",),
            width=8,
        ),
        timeseries(
            "SLO compliance: replies within 5 s",
            "Share of events owing a reply answered within 5 s (objective 99 %); unanswered "
            "events count as missed once 5 s pass, so an outage shows while it lasts.",
            "percentunit",
            [Target(_slo_ratio(), "within 5 s")],
            thresholds=((SLO, "green"),),
            base_color="red",
            alerts=("BotReplyErrorBudgetBurn",),
            max_value=1.0,
            width=8,
        ),
        timeseries(
            "Error budget burn rate",
            "Missed-reply ratio divided by the 1 % budget. 1× spends the 30-day budget in "
            "30 days; the alerts page at 14.4× (1 h) and 6× (6 h), ticket at 1× (3 d).",
            "suffix:×",
            [Target(f"(1 - ({_slo_ratio()})) / {1 - SLO:.2f}", "burn rate")],
            thresholds=BURN_STEPS,
            alerts=("BotReplyErrorBudgetBurn",),
            width=8,
        ),
    ]


def _build_row() -> dash.Row:
    row = dash.Row("Build and scrape")
    panels = [
        stat_panel(
            "Build",
            "Version and Python of each running instance.",
            "none",
            Target(
                f"max by (instance, version, python_version) (bot_build_info{sel()})",
                "{{instance}}: {{version}} (Python {{python_version}})",
                instant=True,
            ),
            text_mode=common.BigValueTextMode.NAME,
            width=12,
        ),
        stat_panel(
            "Scrape up",
            "1 when Prometheus scraped the instance successfully.",
            "none",
            Target(f"up{sel()}", "{{instance}}", instant=True),
            thresholds=((1.0, "green"),),
            base_color="red",
            alerts=("BotDown",),
            width=6,
        ),
        stat_panel(
            "Inbox commit batch (avg)",
            "Average events per inbox commit (group commit); near 1 under light load.",
            "short",
            Target(
                f"sum({_rate('bot_inbox_commit_batch_events_sum')})"
                f" / sum({_rate('bot_inbox_commit_batch_events_count')})"
            ),
            width=6,
        ),
    ]
    for panel in panels:
        row = row.with_panel(panel)
    return row


def build(runbook_base: str) -> dash.Dashboard:
    """The bot dashboard builder; rows are open except the last (collapsed)."""
    board = (
        dash.Dashboard(TITLE)
        .uid(UID)
        .description("Messenger webhook bot: ingest RED, inbox, workers, Send API, reply SLO.")
        .tags(["messenger", "bot"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .variables(variables("bot_build_info", runbook_base))
        .links(dashboard_links("messenger-platform", "Messenger platform (mock)"))
    )
    sections = (
        ("Overview", _overview()),
        ("Webhook ingest", _ingest()),
        ("Events and handlers", _events()),
        ("Inbox and workers", _inbox()),
        ("Redis shards", _shards()),
        ("Send API", _send_api()),
        ("Time to first reply (SLO)", _reply_slo()),
    )
    return with_sections(board, sections).with_row(_build_row())
