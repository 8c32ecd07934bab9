"""What one load run showed, built from locust's stats, the mock's journal and both /metrics.

Pure: parsing and formatting only; the listeners in ``users.py`` do the fetching.

>>> run = RunSummary(scenario="steady", events_sent=10, duration_seconds=2.0)
>>> format_table(run).splitlines()[0]
'scenario                   steady'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# Locust rows the users fire; main_job and the tests read them back by these names.
E2E_TYPE = "E2E"
E2E_NAME = "time to first reply"
ACK_TYPE = "ACK"
ACK_NAME = "webhook ack (mock-observed)"
ACTION_NAME = "/_mock/users/[psid]/actions"
WAIT_NAME = "/_mock/wait/reply"


@dataclass
class RunSummary:
    """The numbers a run is judged by. ``None`` means "could not be measured"."""

    scenario: str
    duration_seconds: float = 0.0
    users: int = 0
    events_sent: int = 0
    events_per_second: float = 0.0
    replies_measured: int = 0
    reply_p50_seconds: float | None = None
    reply_p95_seconds: float | None = None
    reply_p99_seconds: float | None = None
    ack_p50_seconds: float | None = None
    ack_p95_seconds: float | None = None
    ack_p99_seconds: float | None = None
    # A turn is one user action; it fails when the action or its reply fails.
    turns: int = 0
    failed_turns: int = 0
    journal_actions: int | None = None
    replies_missing: int | None = None
    replies_duplicated: int | None = None
    # Owed-kind actions the bot never acknowledged (dropped or skipped deliveries).
    actions_undelivered: int | None = None
    webhook_retries: int | None = None
    send_api_retries: int | None = None
    send_api_errors: int | None = None
    # Redeliveries the bot recognised and skipped (the storm scenario's evidence of chaos).
    duplicates_skipped: int | None = None
    bot_restarts: int = 0
    handshake: str | None = None
    html_report: str | None = None
    violations: list[str] = field(default_factory=list)

    @property
    def failure_ratio(self) -> float:
        return self.failed_turns / self.turns if self.turns else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class JournalCounts:
    """The mock journal's verdict on the loop: one reply per owed action, no more, no less.

    The mock owes a reply only for actions of reply-expecting kinds that the bot acknowledged;
    each reply answers the oldest such action the bot had been sent, and a reply with nothing
    left to answer is an extra (a duplicate). Actions the bot never acknowledged (dropped or
    skipped deliveries) are ``undelivered``, not missing (``mock_meta.accounting``).
    """

    actions: int
    replied: int
    missing: int
    duplicated: int
    webhook_retries: int
    send_api_errors: int
    undelivered: int = 0
    # Actions still on their way to the bot and replies waiting for one of them to settle.
    in_flight: int = 0
    held: int = 0

    @property
    def settled(self) -> bool:
        """Nothing in flight: the missing and duplicated counts will not change by waiting."""
        return self.in_flight == 0 and self.held == 0

    @classmethod
    def from_summary(cls, data: Mapping[str, Any]) -> JournalCounts:
        """Read ``GET /_mock/journal/summary`` (``mock_meta.journal.Journal.summary``)."""
        codes: Mapping[str, Any] = data.get("sends_by_error_code") or {}
        return cls(
            actions=int(data["actions"]),
            replied=int(data["answered"]),
            missing=int(data["unanswered"]),
            duplicated=int(data["extra_replies"]),
            webhook_retries=int(data.get("retries", 0)),
            send_api_errors=sum(int(n) for code, n in codes.items() if code != "none"),
            undelivered=int(data.get("undelivered", 0)),
            in_flight=int(data.get("in_flight", 0)),
            held=int(data.get("replies_held", 0)),
        )


# --- Prometheus text ------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a /metrics page keyed by (sample name, labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sum_samples(
    samples: Samples, name: str, where: Callable[[Mapping[str, str]], bool] | None = None
) -> float:
    """Sum of the samples called ``name`` whose labels pass ``where``."""
    total = 0.0
    for (sample_name, labels), value in samples.items():
        if sample_name == name and (where is None or where(dict(labels))):
            total += value
    return total


def counter_increase(before: float | None, after: float | None) -> int | None:
    """Increase of a counter between two scrapes; a reset (restart) counts from zero."""
    if after is None:
        return None
    if before is None or after < before:
        return int(after)
    return int(after - before)


def duplicates_skipped(samples: Samples) -> float:
    """Events the bot skipped because it had already stored the same event."""
    return sum_samples(samples, "bot_events_duplicate_total")


def send_api_retries(samples: Samples) -> float:
    """Send API attempts the bot retried after a transient failure."""
    return sum_samples(samples, "bot_send_api_retries_total")


# --- formatting ------------------------------------------------------------------------------


def format_table(run: RunSummary) -> str:
    """A two-column table for the terminal; unknown values print as "n/a".

    The HTML report's path is printed by the caller, under the table.
    """
    rows = [
        ("scenario", run.scenario),
        ("duration", f"{run.duration_seconds:.1f} s"),
        ("users (peak)", str(run.users)),
        ("events sent", f"{run.events_sent} ({run.events_per_second:.1f}/s)"),
        ("replies measured", str(run.replies_measured)),
        (
            "time to first reply",
            _percentiles(run.reply_p50_seconds, run.reply_p95_seconds, run.reply_p99_seconds),
        ),
        (
            "webhook ack latency",
            _percentiles(run.ack_p50_seconds, run.ack_p95_seconds, run.ack_p99_seconds),
        ),
        ("failed turns", f"{run.failed_turns} of {run.turns} ({run.failure_ratio:.2%})"),
        ("actions in journal", _opt(run.journal_actions)),
        ("replies missing", _opt(run.replies_missing)),
        ("replies duplicated", _opt(run.replies_duplicated)),
        ("actions undelivered", _opt(run.actions_undelivered)),
        ("webhook retries", _opt(run.webhook_retries)),
        ("send api retries", _opt(run.send_api_retries)),
        ("send api errors", _opt(run.send_api_errors)),
        ("duplicates skipped by bot", _opt(run.duplicates_skipped)),
    ]
    if run.bot_restarts:
        rows.append(("bot restarts", str(run.bot_restarts)))
    if run.handshake is not None:
        rows.append(("handshake", run.handshake))
    rows.append(("slo", "met" if not run.violations else "BROKEN"))
    rows.extend(("  broken", violation) for violation in run.violations)
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def format_progress(
    elapsed: float, users: int, sent: int, replies: int, failures: int, p95: float | None
) -> str:
    """One progress line, printed about once a second while a run is going."""
    p95_text = "n/a" if p95 is None else f"{p95:.3f}s"
    return (
        f"[progress] {elapsed:5.0f}s users={users} sent={sent} replies={replies} "
        f"failures={failures} p95={p95_text}"
    )


def _percentiles(p50: float | None, p95: float | None, p99: float | None) -> str:
    if p50 is None:
        return "n/a"
    return f"p50 {_seconds(p50)}  p95 {_seconds(p95)}  p99 {_seconds(p99)}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _opt(value: int | None) -> str:
    return "n/a" if value is None else str(value)
