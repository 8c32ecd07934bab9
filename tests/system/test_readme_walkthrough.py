"""The README's "Testing your bot (any language)" runs as written, from a clean shell.

Each ``sh`` block of the section runs in its own ``bash`` with an empty environment (only
PATH, HOME and a UTF-8 locale), in the clone's folder, exactly as a reader pastes it into a
fresh terminal. Two things differ, both through the environment the commands already read:
the ports (``MOCK_META_PORT``, ``PORT`` and the URLs' ``8081``/``8000``, so parallel runs on a
shared machine never clash) and the bot's inbox file (a temporary path). ``make setup`` must be
up to date already (CI runs it first; re-installing would need the network).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.procs import free_port
from tests.conftest import services_required
from tests.polling import wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### Testing your bot (any language)"
SERVERS = ("mock-meta serve", "messenger-bot serve")


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def shell_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if subprocess.run(["make", "-q", "setup"], cwd=ROOT, check=False).returncode != 0:
        message = "the venv is not up to date: run make setup first"
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    mock_port, bot_port = free_port(), free_port()
    yield {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "MOCK_META_PORT": str(mock_port),
        "MOCK_META_CALLBACK_URL": f"http://127.0.0.1:{bot_port}/webhook",
        "PORT": str(bot_port),
        "INBOX_PATH": str(tmp_path / "inbox.db"),
        "_BOT_PORT": str(bot_port),
    }


def localise(block: str, env: dict[str, str]) -> str:
    return block.replace("127.0.0.1:8081", f"127.0.0.1:{env['MOCK_META_PORT']}").replace(
        "127.0.0.1:8000", f"127.0.0.1:{env['_BOT_PORT']}"
    )


def start(block: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            ["bash", "-c", block],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped like Ctrl-C stops it
        )


def run(block: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", block],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code < 500
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in that terminal
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_the_readme_walkthrough_runs_as_written(shell_env: dict[str, str], tmp_path: Path) -> None:
    serve_block, bot_block, try_block, check_block = (
        localise(b, shell_env) for b in readme_blocks()
    )
    assert all(server in serve_block + bot_block for server in SERVERS)
    mock_url = f"http://127.0.0.1:{shell_env['MOCK_META_PORT']}"
    bot_url = f"http://127.0.0.1:{shell_env['_BOT_PORT']}"
    mock = start(serve_block, shell_env, tmp_path / "terminal1.log")
    bot = start(bot_block, shell_env, tmp_path / "terminal2.log")
    try:
        wait_until(lambda: answers(f"{mock_url}/_mock/health"), timeout=60, what="mock-meta serve")
        wait_until(lambda: answers(f"{bot_url}/healthz"), timeout=60, what="messenger-bot serve")
        banner = (tmp_path / "terminal1.log").read_text()
        assert "app secret test_app_secret" in banner and f"{mock_url}/_mock/" in banner

        tried = run(try_block, shell_env, timeout=60)
        assert tried.returncode == 0, tried.stdout + tried.stderr
        assert "OK:" in tried.stdout  # verify
        assert "bot replied: 'You said: hello'" in tried.stdout  # trigger, through the mock

        stop(mock)
        wait_until(lambda: not answers(f"{mock_url}/_mock/health"), timeout=15, what="Ctrl-C")
        # Terminal 1 again: the venv is still active there.
        activate = serve_block.split("mock-meta serve")[0]
        checked = run(activate + check_block, shell_env, timeout=300)
    finally:
        stop(mock)
        stop(bot)
    report = checked.stdout
    assert "What to fix" in report or "0 failed" in report, report + checked.stderr
    failed = set(re.findall(r"^FAIL  (\w+)", report, flags=re.MULTILINE))
    # Until the bot normalises second-resolution timestamps (issue 9's hardening work).
    assert failed <= {"seconds_timestamps"}, report
    assert checked.returncode == (1 if failed else 0)
    assert (ROOT / "reports" / "mock-meta-check.xml").is_file()
