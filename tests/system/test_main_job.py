"""The one-command demo: starts mock + bot, handshakes, loads, summarizes, cleans up."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.main_job import JobFailed, handshake
from loadtests.processes import LoopbackStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


def _main_job(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadtests.main_job", *args]


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def test_a_short_demo_run_passes_and_prints_the_summary_and_report_path(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = subprocess.run(
        _main_job("--duration", "5", "--users", "3", "--pace", "0.3", "--report-dir", str(reports)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "handshake ok" in out
    assert re.search(r"^\[progress\] +\d+s users=\d+ sent=\d+ replies=\d+", out, re.MULTILINE)
    assert re.search(r"^time to first reply +p50 [\d.]+ s  p95 [\d.]+ s", out, re.MULTILINE)
    assert re.search(r"^replies missing +0$", out, re.MULTILINE)
    assert re.search(r"^replies duplicated +0$", out, re.MULTILINE)
    assert f"HTML report: {reports / 'report.html'}" in out
    assert (reports / "report.html").stat().st_size > 0
    assert (reports / "steady_stats.csv").exists()
    urls = re.search(r"mock_meta (\S+)\s+bot (\S+)", out)
    assert urls is not None
    assert not _listening(urls[1]) and not _listening(urls[2]), "children left running"


def _run_scenario(scenario: str, reports: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _main_job(
            *("--scenario", scenario, "--duration", "8", "--users", "4", "--pace", "0.3"),
            *("--report-dir", str(reports)),
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )


def _figure(out: str, label: str) -> int:
    found = re.search(rf"^{label} +(\d+)", out, re.MULTILINE)
    assert found is not None, f"no {label!r} line in:\n{out[-2000:]}"
    return int(found[1])


def test_a_bot_restarted_mid_run_answers_every_message_exactly_once(tmp_path: Path) -> None:
    result = _run_scenario("restart", tmp_path / "reports")

    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert _figure(out, "replies missing") == 0
    assert _figure(out, "replies duplicated") == 0


def test_a_failing_send_api_is_retried_and_only_exhausted_sends_go_missing(
    tmp_path: Path,
) -> None:
    result = _run_scenario("failing_send", tmp_path / "reports")

    out = result.stdout
    retries, errors = _figure(out, "send api retries"), _figure(out, "send api errors")
    missing = _figure(out, "replies missing")
    assert retries >= 1, out[-2000:]
    assert _figure(out, "replies duplicated") == 0
    # Retries are bounded: a message whose every attempt hit a fault is dropped. Errors not
    # followed by a retry are exactly those last attempts, so they bound what may go missing.
    assert missing <= errors - retries, out[-2000:]
    assert result.returncode == (0 if missing == 0 else 1), out[-3000:] + result.stderr[-3000:]


def test_ctrl_c_mid_run_stops_the_mock_and_the_bot(tmp_path: Path) -> None:
    job = subprocess.Popen(
        _main_job("--duration", "60", "--users", "2", "--report-dir", str(tmp_path / "r")),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    urls = None
    try:
        assert job.stdout is not None
        for line in job.stdout:
            urls = urls or re.search(r"mock_meta (\S+)\s+bot (\S+)", line)
            if line.startswith("[progress]"):
                break
        assert urls is not None, "the job never reported its services"
        job.send_signal(signal.SIGINT)
        job.wait(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()

    assert job.returncode != 0
    assert not _listening(urls[1]) and not _listening(urls[2]), "children left running"


def test_a_failed_handshake_is_reported_loudly(tmp_path: Path) -> None:
    with LoopbackStack.start(
        tmp_path / "var", bot_env={"MESSENGER_VERIFY_TOKEN": "not_the_mock_token"}
    ) as stack:
        with pytest.raises(JobFailed, match="handshake FAILED"):
            handshake(stack)
