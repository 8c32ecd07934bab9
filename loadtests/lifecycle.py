"""What the master (or a standalone runner) does around a load run.

* ``test_start``: arm the mock with the scenario's faults and chaos; scrape the
  counters the summary reports as increases; start the progress line.
* ``test_stop``: stop the progress line, disarm the mock.
* ``quitting``: wait (with a deadline) for in-flight replies to land, read the mock's journal
  and the bot's /metrics, print the summary, write it as JSON, and set the exit code from
  the SLO thresholds (locust's documented way to gate CI).

Workers only run users; all of this happens once, on the master.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events as locust_events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import scenarios, slo
from loadtests.control import ControlError, MockControl, scrape
from loadtests.summary import (
    ACK_NAME,
    ACK_TYPE,
    ACTION_NAME,
    E2E_NAME,
    E2E_TYPE,
    JournalCounts,
    RunSummary,
    Samples,
    counter_increase,
    duplicates_skipped,
    format_progress,
    format_table,
    parse_metrics,
    send_api_retries,
)
from loadtests.users import DEFAULT_PACE, DEFAULT_REPLY_TIMEOUT

logger = logging.getLogger("loadtests")
SETTLE_POLL_SECONDS = 0.2


def add_options(parser: LocustArgumentParser, **_: Any) -> None:
    """The load tests' own flags; each also reads a ``LOCUST_*`` environment variable."""
    group = parser.add_argument_group("messenger-harness")
    group.add_argument(
        "--scenario",
        choices=list(scenarios.SCENARIOS),
        default="steady",
        env_var="LOCUST_SCENARIO",
        help="load scenario (see loadtests/README.md)",
    )
    group.add_argument(
        "--reply-timeout",
        type=float,
        default=DEFAULT_REPLY_TIMEOUT,
        env_var="LOCUST_REPLY_TIMEOUT",
        help="seconds to wait for each reply",
    )
    group.add_argument(
        "--pace",
        type=float,
        default=DEFAULT_PACE,
        env_var="LOCUST_PACE",
        help="seconds between the starts of one user's turns",
    )
    group.add_argument(
        "--bot-url",
        default="",
        env_var="LOCUST_BOT_URL",
        help="the bot's base URL, to read its /metrics (retries)",
    )
    group.add_argument(
        "--settle-timeout",
        type=float,
        default=DEFAULT_REPLY_TIMEOUT,
        env_var="LOCUST_SETTLE_TIMEOUT",
        help="at the end, seconds to wait for in-flight replies",
    )
    group.add_argument(
        "--summary-json",
        default="",
        env_var="LOCUST_SUMMARY_JSON",
        help="write the run summary here as JSON",
    )
    group.add_argument(
        "--progress-interval",
        type=float,
        default=1.0,
        env_var="LOCUST_PROGRESS_INTERVAL",
        help="seconds between progress lines; 0 turns them off",
    )
    group.add_argument(
        "--slo-p95",
        type=float,
        default=slo.SloThresholds.reply_p95_seconds,
        env_var="LOCUST_SLO_P95_SECONDS",
        help="p95 time to first reply limit, seconds",
    )
    group.add_argument(
        "--slo-failure-ratio",
        type=float,
        default=slo.SloThresholds.max_failure_ratio,
        env_var="LOCUST_SLO_FAILURE_RATIO",
        help="share of failed turns allowed",
    )
    group.add_argument(
        "--slo-max-missing",
        type=int,
        default=slo.SloThresholds.max_missing_replies,
        env_var="LOCUST_SLO_MAX_MISSING",
        help="missing replies allowed",
    )
    group.add_argument(
        "--slo-max-duplicates",
        type=int,
        default=slo.SloThresholds.max_duplicate_replies,
        env_var="LOCUST_SLO_MAX_DUPLICATES",
        help="duplicate replies allowed",
    )


def thresholds_from(options: Any) -> slo.SloThresholds:
    return slo.SloThresholds(
        reply_p95_seconds=options.slo_p95,
        max_failure_ratio=options.slo_failure_ratio,
        max_missing_replies=options.slo_max_missing,
        max_duplicate_replies=options.slo_max_duplicates,
    )


class RunLifecycle:
    """Per-run state on the master: counters before the run, peak users, the progress line."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        # install() only builds a lifecycle when locust parsed the command line.
        self.options: Any = environment.parsed_options
        self.scenario = scenarios.get(getattr(self.options, "scenario", "steady"))
        self.started: float | None = None
        self.stopped: float | None = None
        self.peak_users = 0
        self._progress: gevent.Greenlet | None = None
        self._before_bot: Samples = {}
        self._before_journal: JournalCounts | None = None
        self._restore: dict[str, dict[str, Any]] = {}

    def install(self) -> None:
        events = self.environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    # --- listeners -------------------------------------------------------------------------

    def on_test_start(self, **_: Any) -> None:
        self.started, self.stopped, self.peak_users = time.monotonic(), None, 0
        if self.scenario.restart_bot_at is not None:
            logger.info(
                "scenario %r: the orchestrator (loadtests.main_job) restarts the bot",
                self.scenario.name,
            )
        with self._mock() as mock:
            self._before_journal = _journal(mock)
            self._arm(mock)
        self._before_bot = self._bot_samples()
        self._progress = gevent.spawn(self._progress_loop)

    def on_test_stop(self, **_: Any) -> None:
        self.stopped = time.monotonic()
        if self._progress is not None:
            self._progress.kill(block=False)
            self._progress = None
        with self._mock() as mock:
            self._disarm(mock)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if self.started is None:
            return
        summary = self.summarize()
        summary.violations = [str(v) for v in slo.check(summary, thresholds_from(self.options))]
        print(format_table(summary), flush=True)
        if self.options.summary_json:
            path = Path(self.options.summary_json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(summary.to_json())
        unexpected = bool(environment.runner and environment.runner.exceptions)
        environment.process_exit_code = 1 if summary.violations or unexpected else 0

    # --- the summary -------------------------------------------------------------------------

    def summarize(self) -> RunSummary:
        stats = self.environment.stats
        e2e, ack = stats.get(E2E_NAME, E2E_TYPE), stats.get(ACK_NAME, ACK_TYPE)
        actions = stats.get(ACTION_NAME, "POST")
        end = self.stopped or time.monotonic()
        duration = max(end - (self.started or end), 1e-9)
        run = RunSummary(
            scenario=self.scenario.name,
            duration_seconds=round(duration, 3),
            users=self.peak_users,
            events_sent=actions.num_requests,
            events_per_second=round(actions.num_requests / duration, 2),
            replies_measured=e2e.num_requests - e2e.num_failures,
            turns=actions.num_requests,
            failed_turns=actions.num_failures + e2e.num_failures,
        )
        if e2e.num_requests - e2e.num_failures > 0:
            run.reply_p50_seconds, run.reply_p95_seconds, run.reply_p99_seconds = _pcts(e2e)
        if ack.num_requests:
            run.ack_p50_seconds, run.ack_p95_seconds, run.ack_p99_seconds = _pcts(ack)
        with self._mock() as mock:
            journal = self._settle(mock)
        if journal is not None:
            # The journal counts since the mock's last reset: report this run's increase.
            before = self._before_journal or JournalCounts(0, 0, 0, 0, 0, 0)
            run.journal_actions = journal.actions - before.actions
            run.replies_missing = max(journal.missing - before.missing, 0)
            run.replies_duplicated = max(journal.duplicated - before.duplicated, 0)
            run.actions_undelivered = max(journal.undelivered - before.undelivered, 0)
            run.webhook_retries = journal.webhook_retries - before.webhook_retries
            run.send_api_errors = journal.send_api_errors - before.send_api_errors
        after_bot = self._bot_samples()
        if after_bot:
            # A restarted bot's counters start again from zero; counter_increase allows that.
            bot_before = self._before_bot
            run.send_api_retries = counter_increase(
                send_api_retries(bot_before) if bot_before else None, send_api_retries(after_bot)
            )
            run.duplicates_skipped = counter_increase(
                duplicates_skipped(bot_before) if bot_before else None,
                duplicates_skipped(after_bot),
            )
        return run

    def _settle(self, mock: MockControl) -> JournalCounts | None:
        """The journal once no reply is outstanding, or as it stands at the deadline."""
        deadline = time.monotonic() + max(self.options.settle_timeout, 0.0)
        baseline = self._before_journal.missing if self._before_journal else 0
        while True:
            counts = _journal(mock)
            done = counts is None or (counts.missing <= baseline and counts.settled)
            if done or time.monotonic() >= deadline:
                return counts
            gevent.sleep(SETTLE_POLL_SECONDS)

    # --- helpers ---------------------------------------------------------------------------

    def _arm(self, mock: MockControl) -> None:
        scenario = self.scenario
        if scenario.chaos is not None:
            self._restore["chaos"] = mock.chaos()
            mock.set_chaos(scenario.chaos)
        for fault in scenario.faults:
            mock.arm_fault(fault)

    def _disarm(self, mock: MockControl) -> None:
        try:
            if self.scenario.faults:
                mock.clear_faults()
            if "chaos" in self._restore:
                mock.set_chaos(self._restore.pop("chaos"))
        except ControlError as exc:
            logger.error("could not disarm the mock: %s", exc)

    def _progress_loop(self) -> None:
        interval = self.options.progress_interval
        tick = interval if interval > 0 else 1.0
        while True:
            gevent.sleep(tick)
            runner = self.environment.runner
            users = runner.user_count if runner is not None else 0
            self.peak_users = max(self.peak_users, users)
            if interval <= 0:
                continue
            stats = self.environment.stats
            e2e = stats.get(E2E_NAME, E2E_TYPE)
            replies = e2e.num_requests - e2e.num_failures
            p95 = e2e.get_response_time_percentile(0.95) / 1000 if replies else None
            line = format_progress(
                elapsed=time.monotonic() - (self.started or time.monotonic()),
                users=users,
                sent=stats.get(ACTION_NAME, "POST").num_requests,
                replies=replies,
                failures=stats.total.num_failures,
                p95=p95,
            )
            print(line, file=sys.stdout, flush=True)

    def _bot_samples(self) -> Samples:
        if not self.options.bot_url:
            return {}
        return _samples(lambda: scrape(self.options.bot_url.rstrip("/") + "/metrics"))

    def _mock(self) -> MockControl:
        return MockControl(self.environment.host or "http://127.0.0.1:8081")


def install(events: Any = locust_events) -> None:
    """Register the options and, on the master or a standalone runner, the run lifecycle."""
    events.init_command_line_parser.add_listener(add_options)
    # One INFO line per control call would bury the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    @events.init.add_listener
    def _on_init(environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
            return
        RunLifecycle(environment).install()


def _pcts(entry: Any) -> tuple[float, float, float]:
    return tuple(entry.get_response_time_percentile(p) / 1000 for p in (0.5, 0.95, 0.99))  # type: ignore[return-value]


def _journal(mock: MockControl) -> JournalCounts | None:
    try:
        return JournalCounts.from_summary(mock.journal_summary())
    except (ControlError, KeyError, TypeError, ValueError) as exc:
        logger.error("could not read the mock's journal summary: %s", exc)
        return None


def _samples(fetch: Any) -> Samples:
    try:
        text = fetch()
    except ControlError as exc:
        logger.error("could not scrape metrics: %s", exc)
        return {}
    return parse_metrics(text) if text else {}
