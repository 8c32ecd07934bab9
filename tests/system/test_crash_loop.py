"""kill -9 cycles of a real bot under steady traffic through a real mock with echoes on.

Every user message must be answered exactly once, counted from the mock's journal: the
outbox commits replies with the handled mark, stores ``sending`` before each call, and
settles a reply left ``sending`` by the crash with the echo that carries its key.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.processes import LoopbackStack
from tests.polling import wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

USERS = 20
CYCLES = 5
PACE_SECONDS = 0.02  # about 50 user messages/s offered


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LoopbackStack]:
    env = {
        "LOG_LEVEL": "WARNING",
        "INBOX_SYNCHRONOUS": "NORMAL",  # survives kill -9 (not power loss): enough here
        "ORDERING_WINDOW_MS": "0",
        "REPLY_ECHO_WAIT_SECONDS": "10",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    with LoopbackStack.start(tmp_path / "var", bot_env=env) as running:
        yield running


class Traffic(threading.Thread):
    """Users write to the page at a steady pace until stopped."""

    def __init__(self, mock: httpx.Client, users: list[str]) -> None:
        super().__init__(daemon=True)
        self.mock, self.users = mock, users
        self.stopped = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            psid = self.users[self.sent % len(self.users)]
            answer = self.mock.post(
                f"/_mock/users/{psid}/actions", json={"type": "text", "text": f"n{self.sent}"}
            )
            answer.raise_for_status()
            self.sent += 1
            self.stopped.wait(PACE_SECONDS)  # pacing the offered load, not waiting for work


def _unsettled(inbox: Path) -> int:
    """Events not handled yet plus replies not settled, read beside the running bot (WAL)."""
    with sqlite3.connect(f"file:{inbox}?mode=ro", uri=True, timeout=5) as conn:
        (events,) = conn.execute("SELECT COUNT(*) FROM events WHERE status = 'pending'").fetchone()
        (replies,) = conn.execute(
            "SELECT COUNT(*) FROM replies WHERE state IN ('pending', 'sending', 'uncertain')"
        ).fetchone()
    return int(events + replies)


def test_kill_9_cycles_under_steady_traffic_answer_every_message_exactly_once(
    stack: LoopbackStack, tmp_path: Path
) -> None:
    rng = random.Random(7)
    with httpx.Client(base_url=stack.mock_url, timeout=10) as mock:
        # Meta's spacing (1 s, 5 s, 30 s...) squeezed so redeliveries land within the test.
        profile = {"retry_delays": [0.2, 0.5, 1.0], "repeat_delay": 1.0}
        mock.put("/_mock/settings", json={"retry_profile": profile}).raise_for_status()
        users = [mock.post("/_mock/users", json={}).json()["psid"] for _ in range(USERS)]

        def summary() -> dict[str, Any]:
            result: dict[str, Any] = mock.get("/_mock/journal/summary").json()
            return result

        traffic = Traffic(mock, users)
        traffic.start()
        try:
            for _ in range(CYCLES):
                # A random moment: after a random number of further answers.
                target = summary()["answered"] + rng.randint(10, 60)
                wait_until(lambda t=target: summary()["answered"] >= t, timeout=60, what="answers")
                assert stack.bot.popen is not None
                stack.bot.popen.send_signal(signal.SIGKILL)
                stack.bot.popen.wait(10)
                stack.bot.stop()
                stack.bot.start()
        finally:
            traffic.stopped.set()
            traffic.join(10)

        wait_until(
            lambda: summary()["actions"] == traffic.sent and summary()["unanswered"] == 0,
            timeout=90,
            what="every message answered",
        )
        inbox = tmp_path / "var" / "inbox.db"
        wait_until(lambda: _unsettled(inbox) == 0, timeout=60, what="the outbox settled")
        final = summary()

    assert traffic.sent > 5 * CYCLES
    assert final["answered"] == traffic.sent  # 0 lost
    assert final["extra_replies"] == 0  # 0 doubled
