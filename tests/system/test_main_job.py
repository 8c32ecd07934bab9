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


@pytest.mark.parametrize(
    ("scenario", "evidence"),
    [
        # The bot is stopped and started again half way: nothing acknowledged is lost.
        ("restart", r"^replies missing +0$"),
        # Transient Send API errors (code 2, 613) are retried by the bot until replies land.
        ("failing_send", r"^send api retries +[1-9]\d*$"),
    ],
)
def test_fault_scenarios_still_answer_every_message_exactly_once(
    tmp_path: Path, scenario: str, evidence: str
) -> None:
    reports = tmp_path / "reports"
    result = subprocess.run(
        _main_job(
            *("--scenario", scenario, "--duration", "8", "--users", "4", "--pace", "0.3"),
            *("--report-dir", str(reports)),
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )

    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert re.search(r"^replies missing +0$", out, re.MULTILINE), out[-2000:]
    assert re.search(r"^replies duplicated +0$", out, re.MULTILINE), out[-2000:]
    assert re.search(evidence, out, re.MULTILINE), out[-2000:]


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
