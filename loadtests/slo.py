"""Service-level thresholds a load run must meet, and the pure check against a run summary.

>>> from loadtests.summary import RunSummary
>>> run = RunSummary(scenario="steady", replies_measured=50, reply_p95_seconds=7.0,
...                  replies_missing=0, replies_duplicated=0)
>>> [v.name for v in check(run, SloThresholds(reply_p95_seconds=5.0))]
['reply_p95_seconds']
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.summary import RunSummary


@dataclass(frozen=True)
class SloThresholds:
    """Limits for one run; the defaults are the bot's SLO (first reply within 5 s at p95)."""

    reply_p95_seconds: float = 5.0
    max_failure_ratio: float = 0.01
    max_missing_replies: int = 0
    max_duplicate_replies: int = 0
    # A run that measured no reply at all proves nothing, so it fails by default.
    min_replies: int = 1


@dataclass(frozen=True)
class SloViolation:
    """One broken threshold, phrased for a terminal: ``name``, what was seen, the limit."""

    name: str
    observed: float
    limit: float

    def __str__(self) -> str:
        return f"{self.name}: observed {_num(self.observed)}, limit {_num(self.limit)}"


def check(run: RunSummary, slo: SloThresholds) -> list[SloViolation]:
    """Every threshold ``run`` breaks (empty when the run meets its SLO)."""
    violations: list[SloViolation] = []
    if run.replies_measured < slo.min_replies:
        violations.append(SloViolation("replies_measured", run.replies_measured, slo.min_replies))
    if run.reply_p95_seconds is not None and run.reply_p95_seconds > slo.reply_p95_seconds:
        violations.append(
            SloViolation("reply_p95_seconds", run.reply_p95_seconds, slo.reply_p95_seconds)
        )
    if run.failure_ratio > slo.max_failure_ratio:
        violations.append(SloViolation("failure_ratio", run.failure_ratio, slo.max_failure_ratio))
    if run.replies_missing is None or run.replies_missing > slo.max_missing_replies:
        # None means the journal could not be read: the loop is unproven, which is a failure.
        observed = float("nan") if run.replies_missing is None else run.replies_missing
        violations.append(SloViolation("replies_missing", observed, slo.max_missing_replies))
    if run.replies_duplicated is None or run.replies_duplicated > slo.max_duplicate_replies:
        observed = float("nan") if run.replies_duplicated is None else run.replies_duplicated
        violations.append(SloViolation("replies_duplicated", observed, slo.max_duplicate_replies))
    return violations


def _num(value: float) -> str:
    if value != value:  # NaN: the value was not available
        return "unknown"
    return f"{value:g}"
