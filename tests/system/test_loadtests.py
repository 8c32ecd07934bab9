"""Load tests end to end: locust → mock_meta → bot → Send API → mock_meta, on loopback.

Real processes: the mock and the bot started by ``loadtests.processes``, locust as its CLI
(one master and two workers, or standalone). Runs are a few seconds with a handful of users.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.control import MockControl
from loadtests.processes import LoopbackStack, free_port
from loadtests.summary import E2E_NAME, E2E_TYPE, RunSummary

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
RUN_LIMIT_SECONDS = 120


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LoopbackStack]:
    with LoopbackStack.start(tmp_path / "var", bot_env={"LOG_LEVEL": "WARNING"}) as running:
        yield running


def _locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]


def _run_options(stack: LoopbackStack, reports: Path, *extra: str) -> list[str]:
    return [
        "--headless",
        "--only-summary",
        "--host",
        stack.mock_url,
        "--bot-url",
        stack.bot_url,
        "--csv",
        str(reports / "run"),
        "--html",
        str(reports / "report.html"),
        "--summary-json",
        str(reports / "summary.json"),
        "--pace",
        "0.2",
        "--reply-timeout",
        "10",
        "--settle-timeout",
        "10",
        *extra,
    ]


def _e2e_row(reports: Path) -> dict[str, str]:
    with (reports / "run_stats.csv").open() as stats:
        rows = [r for r in csv.DictReader(stats) if (r["Type"], r["Name"]) == (E2E_TYPE, E2E_NAME)]
    assert rows, "no E2E row in the locust stats"
    return rows[0]


def _journal(stack: LoopbackStack) -> dict[str, object]:
    with MockControl(stack.mock_url) as mock:
        return mock.journal_summary()


def test_distributed_run_measures_replies_and_the_journal_shows_each_answered_once(
    stack: LoopbackStack, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    port = str(free_port())
    master = subprocess.Popen(
        _locust(
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            port,
            "--expect-workers",
            "2",
            "--expect-workers-max-wait",
            "60",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "5s",
            *_run_options(stack, reports),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers = [
        subprocess.Popen(
            _locust("--worker", "--master-host", "127.0.0.1", "--master-port", port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        output, _ = master.communicate(timeout=RUN_LIMIT_SECONDS)
        for worker in workers:
            worker.wait(timeout=30)
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()

    assert master.returncode == 0, output[-3000:]
    assert int(_e2e_row(reports)["Request Count"]) > 0
    assert (reports / "report.html").stat().st_size > 0
    summary = RunSummary.from_json((reports / "summary.json").read_text())
    assert summary.users == 4
    assert summary.replies_measured > 0 and summary.reply_p95_seconds is not None
    journal = _journal(stack)
    # A worker's last few samples may miss the master's final report; the journal has them all.
    assert journal["actions"] >= summary.events_sent > 0
    assert journal["answered"] == journal["actions"]
    assert journal["unanswered"] == 0
    assert journal["extra_replies"] == 0


def test_a_broken_slo_threshold_makes_the_headless_run_exit_non_zero(
    stack: LoopbackStack, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    # slow_send delays half of the Send API calls by 1.5 s: p95 cannot stay under 0.5 s.
    result = subprocess.run(
        _locust(
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "4s",
            "--scenario",
            "slow_send",
            "--slo-p95",
            "0.5",
            *_run_options(stack, reports),
        ),
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_SECONDS,
    )

    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    summary = RunSummary.from_json((reports / "summary.json").read_text())
    assert [v.split(":")[0] for v in summary.violations] == ["reply_p95_seconds"]
    assert summary.reply_p95_seconds is not None and summary.reply_p95_seconds >= 1.5
    assert "reply_p95_seconds" in result.stdout
    with MockControl(stack.mock_url) as mock:
        assert mock.faults() == [], "the scenario's faults were not disarmed"
