"""The one-command demo: mock + bot + handshake + a headless load run + a summary table.

    python -m loadtests.main_job                      # ~30 s steady run, 10 users
    python -m loadtests.main_job --scenario restart --duration 20 --users 5

Everything runs on 127.0.0.1 with the demo credentials and a SQLite inbox in a fresh temp
directory. Exits 0 only when the handshake passed, the run met its SLO and the journal shows
every message answered exactly once. The child processes are always stopped, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO

from loadtests import scenarios
from loadtests.control import ControlError, MockControl
from loadtests.processes import LoopbackStack, StartupError
from loadtests.slo import SloThresholds
from loadtests.summary import RunSummary, format_table

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PROGRESS_PREFIX = "[progress]"
# Locust gets this long beyond the run time (settling, reports) before we stop it.
LOCUST_GRACE_SECONDS = 90.0
# The demo's bot shuts down quickly, so a restart mid-run is a short outage.
DEMO_BOT_ENV = {"LOG_LEVEL": "WARNING", "SHUTDOWN_GRACE_SECONDS": "3"}
NEEDS_LOAD_EXTRA = (
    "messenger-harness-demo drives the load with locust, which is not installed; "
    "install the load-test extra: pip install 'messenger-harness[load]'"
)


class JobFailed(Exception):
    """A step of the job failed; the message says which and why."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="messenger-harness-demo",
        description="Start mock_meta and the bot on loopback, handshake, load, summarize.",
    )
    parser.add_argument("--scenario", choices=list(scenarios.SCENARIOS), default="steady")
    parser.add_argument("--duration", type=float, default=30.0, help="load seconds")
    parser.add_argument("--users", type=int, default=10, help="simulated users (PSIDs)")
    parser.add_argument("--spawn-rate", type=float, default=None, help="users started per s")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between a user's turns")
    parser.add_argument("--reply-timeout", type=float, default=15.0)
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="locust worker processes (0: one standalone process)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where CSV/HTML reports go (default reports/<timestamp>)",
    )
    parser.add_argument(
        "--keep-var",
        action="store_true",
        help="keep the temp dir with the inbox and the service logs",
    )
    parser.add_argument("--slo-p95", type=float, default=SloThresholds.reply_p95_seconds)
    parser.add_argument("--slo-failure-ratio", type=float, default=SloThresholds.max_failure_ratio)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.users <= 0:
        parser.error("--duration and --users must be positive")
    return args


def locust_command(args: argparse.Namespace, stack: LoopbackStack, report_dir: Path) -> list[str]:
    """The headless locust invocation for this run (also what the README shows)."""
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
        "--headless", "--only-summary",
        "--host", stack.mock_url,
        "--bot-url", stack.bot_url,
        "-u", str(args.users),
        "-r", str(args.spawn_rate or args.users),
        "-t", f"{args.duration:g}s",
        "--scenario", args.scenario,
        "--pace", str(args.pace),
        "--reply-timeout", str(args.reply_timeout),
        "--settle-timeout", str(args.reply_timeout),
        "--slo-p95", str(args.slo_p95),
        "--slo-failure-ratio", str(args.slo_failure_ratio),
        "--csv", str(report_dir / args.scenario),
        "--html", str(report_dir / "report.html"),
        "--summary-json", str(report_dir / "summary.json"),
    ]  # fmt: skip
    if args.processes:
        command += ["--processes", str(args.processes)]
    return command


def handshake(stack: LoopbackStack) -> str:
    """Run the mock's GET challenge against the bot; raise ``JobFailed`` unless it passed."""
    try:
        with MockControl(stack.mock_url) as mock:
            result = mock.handshake()
    except ControlError as exc:
        raise JobFailed(f"handshake could not run: {exc}") from exc
    if not result.get("ok"):
        raise JobFailed(
            f"handshake FAILED: status={result.get('status')} reason={result.get('reason')!r}"
        )
    return f"ok (HTTP {result.get('status')})"


def run_locust(
    command: list[str],
    log_path: Path,
    timeout: float,
    *,
    restart_at: float | None,
    stack: LoopbackStack,
) -> int:
    """Run locust, echo its progress lines, restart the bot on schedule; returns its exit code."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        reader = threading.Thread(target=_relay, args=(process.stdout, log), daemon=True)
        reader.start()
        try:
            started = time.monotonic()
            if restart_at is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=restart_at)
                if process.poll() is None:
                    print(f"{PROGRESS_PREFIX} restarting the bot at {restart_at:.0f}s", flush=True)
                    stack.restart_bot()
                    print(
                        f"{PROGRESS_PREFIX} bot back after "
                        f"{time.monotonic() - started - restart_at:.1f}s",
                        flush=True,
                    )
            return process.wait(timeout=max(timeout - (time.monotonic() - started), 1.0))
        except subprocess.TimeoutExpired as exc:
            raise JobFailed(f"locust did not finish within {timeout:.0f}s") from exc
        finally:
            if process.poll() is None:
                # SIGTERM makes locust run its quitting hooks and write its reports.
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            reader.join(timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("locust") is None:
        # Without this, the run "fails its SLO" with an empty table, which hides the cause.
        print(NEEDS_LOAD_EXTRA, file=sys.stderr)
        return 2
    report_dir: Path = (args.report_dir or _default_report_dir()).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="messenger-harness-"))
    scenario = scenarios.get(args.scenario)
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    stack: LoopbackStack | None = None
    try:
        print(f"starting mock_meta and the bot (work dir {workdir}) ...", flush=True)
        stack = LoopbackStack.start(workdir, bot_env=DEMO_BOT_ENV)
        print(f"mock_meta {stack.mock_url}   bot {stack.bot_url}", flush=True)
        print(f"console   {stack.mock_url}/  (watch the run live in a browser)", flush=True)
        handshake_result = handshake(stack)
        print(f"handshake {handshake_result}", flush=True)
        print(f"running scenario {scenario.name!r}: {scenario.description}", flush=True)
        restart_at = args.duration * scenario.restart_bot_at if scenario.restart_bot_at else None
        code = run_locust(
            locust_command(args, stack, report_dir),
            report_dir / "locust.log",
            args.duration + args.reply_timeout + LOCUST_GRACE_SECONDS,
            restart_at=restart_at,
            stack=stack,
        )
        summary = _read_summary(report_dir, args.scenario)
        summary.handshake = handshake_result
        summary.bot_restarts = stack.bot_restarts
        html = report_dir / "report.html"
        summary.html_report = str(html) if html.exists() else None
        print("\n" + format_table(summary), flush=True)
        print(f"\nHTML report: {summary.html_report or 'not written'}")
        print(f"locust log:  {report_dir / 'locust.log'}")
        if code != 0 or summary.violations:
            print(
                f"FAILED: locust exited {code}; SLO violations: {len(summary.violations)}",
                file=sys.stderr,
            )
            return 1
        return 0
    except (JobFailed, StartupError) as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the mock and the bot", file=sys.stderr)
        return 130
    finally:
        if stack is not None:
            stack.stop()
        signal.signal(signal.SIGTERM, previous)
        if args.keep_var:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _read_summary(report_dir: Path, scenario: str) -> RunSummary:
    path = report_dir / "summary.json"
    try:
        return RunSummary.from_json(path.read_text())
    except (OSError, ValueError) as exc:
        summary = RunSummary(scenario=scenario)
        summary.violations = [f"no run summary at {path}: {exc}"]
        return summary


def _relay(stream: IO[str] | None, log: IO[str]) -> None:
    """Copy locust's output to the log; echo only progress lines to the terminal."""
    if stream is None:
        return
    for line in stream:
        log.write(line)
        if line.startswith(PROGRESS_PREFIX):
            print(line.rstrip("\n"), flush=True)
    log.flush()


def _default_report_dir() -> Path:
    return Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so the finally block stops the children.
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
