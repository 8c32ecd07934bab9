"""Traffic, kill -9 cycles and settlement checks on a running loopback stack (bot + mock).

Shared by the fault benchmarks (``bench.faults``) and the crash-loop system test: users write
to the page through the mock's control API at a steady rate, the bot is killed at seeded random
moments and restarted on the same socket and inbox, and the outbox is read beside the running
bot to know when nothing is left to send.

>>> with LoopbackStack.start(Path("/tmp/run"), bot_env=FAULT_BOT_ENV) as stack:  # doctest: +SKIP
...     with MockJournal(stack.mock_url) as mock:
...         users = mock.new_users(100)
...         with Traffic(stack.mock_url, users, rate=100) as traffic:
...             kill_9_cycles(stack, mock, cycles=5, rng=random.Random(7))
...         wait_settled(stack, mock, sent=traffic.sent, timeout=120)
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from bench.procs import BenchError
from loadtests.control import scrape
from loadtests.processes import LoopbackStack, StopOnExit
from loadtests.summary import parse_metrics, sum_samples

# The bot as the crash runs start it: no ordering hold (every event goes straight to a worker),
# a short graceful stop, and a reply left ``sending`` settled by its echo within 10 s.
FAULT_BOT_ENV: dict[str, str] = {
    "LOG_LEVEL": "WARNING",
    "ORDERING_WINDOW_MS": "0",
    "REPLY_ECHO_WAIT_SECONDS": "10",
    "SHUTDOWN_GRACE_SECONDS": "2",
}
# Meta's redelivery spacing (1 s, 5 s, 30 s...) squeezed, so events whose delivery a kill -9
# interrupted come back within the run.
SQUEEZED_RETRIES: dict[str, Any] = {"retry_delays": [0.2, 0.5, 1.0], "repeat_delay": 1.0}


class StackError(BenchError):
    """A condition on the stack was not met in time; the message says which."""


def poll_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Re-check ``condition`` every 0.1 s until truthy; :class:`StackError` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise StackError(f"{what} not met within {timeout:g} s (last value: {result!r})")
        time.sleep(0.1)


class MockJournal:
    """The few control-API calls the fault runs make: users, settings, faults, the journal."""

    def __init__(self, mock_url: str) -> None:
        self.http = httpx.Client(base_url=mock_url, timeout=30.0, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> MockJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_users(self, count: int) -> list[str]:
        return [self.http.post("/_mock/users", json={}).json()["psid"] for _ in range(count)]

    def squeeze_retries(self) -> None:
        answer = self.http.put("/_mock/settings", json={"retry_profile": SQUEEZED_RETRIES})
        answer.raise_for_status()

    def arm_fault(self, **spec: Any) -> None:
        self.http.post("/_mock/faults", json=spec).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_mock/faults").raise_for_status()

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/_mock/journal/summary").json()
        return result

    def sends(self, psids: list[str]) -> list[dict[str, Any]]:
        """Every Send API call recorded for these users (one query each: the journal answers
        at most 10,000 records per query)."""
        records: list[dict[str, Any]] = []
        for psid in psids:
            page = self.http.get("/_mock/journal/sends", params={"psid": psid, "limit": 10_000})
            page.raise_for_status()
            records.extend(page.json()["items"])
        return records


class Traffic(StopOnExit, threading.Thread):
    """Users write to the page at ``rate`` messages/s (open loop: a late send does not delay
    the next ones) until stopped or ``total`` were sent; ``text(n)`` is message n's text."""

    def __init__(
        self,
        mock_url: str,
        users: list[str],
        *,
        rate: float,
        total: int | None = None,
        text: Callable[[int], str] = lambda n: f"n{n}",
    ) -> None:
        super().__init__(daemon=True)
        self.mock_url, self.users, self.rate, self.total, self.text = (
            mock_url,
            users,
            rate,
            total,
            text,
        )
        self.stopped = threading.Event()
        self.texts: list[str] = []
        self.started_at = self.ended_at = 0.0
        self.error: httpx.HTTPError | None = None

    @property
    def sent(self) -> int:
        return len(self.texts)

    @property
    def achieved_rate(self) -> float:
        """Messages/s actually sent (below ``rate`` when the mock answered too slowly)."""
        elapsed = (self.ended_at or time.monotonic()) - self.started_at
        return self.sent / elapsed if elapsed > 0 else 0.0

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            with httpx.Client(base_url=self.mock_url, timeout=30.0, trust_env=False) as mock:
                self._send_until_stopped(mock)
        except httpx.HTTPError as exc:
            self.error = exc  # raised by stop(), in the thread that runs the scenario
        self.ended_at = time.monotonic()

    def _send_until_stopped(self, mock: httpx.Client) -> None:
        n = 0
        while not self.stopped.is_set() and (self.total is None or n < self.total):
            text = self.text(n)
            psid = self.users[n % len(self.users)]
            answer = mock.post(f"/_mock/users/{psid}/actions", json={"type": "text", "text": text})
            answer.raise_for_status()
            self.texts.append(text)
            n += 1
            # Pacing the offered load, not waiting for work: the next message's due time.
            self.stopped.wait(max(0.0, self.started_at + n / self.rate - time.monotonic()))

    def stop(self) -> None:
        """Stop sending; raises :class:`StackError` if the mock refused a message."""
        self.stopped.set()
        self.join(30)
        if self.error is not None:
            raise StackError(f"traffic stopped after {self.sent} messages: {self.error!r}")

    def __enter__(self) -> Self:
        self.start()
        return self


UNKNOWN_FATE = ("sending", "uncertain")  # reply states a crash leaves for the echo to settle
SETTLEMENTS = ("echo", "resent", "dropped")  # how the bot settles a reply of unknown fate


@dataclass(frozen=True)
class Kill:
    """One kill -9: the replies it left of unknown fate (``sending`` or ``uncertain``, read
    from the inbox while the bot was down), and the settlements the killed process had made
    (its ``bot_reply_settlements_total`` just before the kill, by outcome)."""

    left_unknown: int
    settled_before: dict[str, int]


def settlements(stack: LoopbackStack) -> dict[str, int]:
    """Replies of unknown fate the running bot process settled so far, by outcome (its
    counters start from zero at each start); empty when /metrics cannot be read."""
    text = scrape(f"{stack.bot_url}/metrics")
    if text is None:
        return {}
    samples = parse_metrics(text)
    counts: dict[str, int] = {}
    for outcome in SETTLEMENTS:

        def labelled(labels: Mapping[str, str], outcome: str = outcome) -> bool:
            return labels.get("outcome") == outcome

        counts[outcome] = int(sum_samples(samples, "bot_reply_settlements_total", labelled))
    return counts


def kill_9(stack: LoopbackStack) -> Kill:
    """SIGKILL the bot, then start it again on the same socket and inbox (until ready)."""
    popen = stack.bot.popen
    assert popen is not None, "the bot is not running"
    settled = settlements(stack)
    popen.send_signal(signal.SIGKILL)
    popen.wait(10)
    states = reply_states(Path(stack.bot.env["INBOX_PATH"]))  # nobody writes: exact
    stack.bot.stop()
    stack.bot.start()
    return Kill(sum(states.get(state, 0) for state in UNKNOWN_FATE), settled)


def kill_9_cycles(
    stack: LoopbackStack,
    mock: MockJournal,
    *,
    cycles: int,
    rng: random.Random,
    answers_between: tuple[int, int] = (10, 60),
    timeout: float = 60.0,
) -> list[Kill]:
    """``cycles`` kill -9 and restarts, each at a random moment: after a random number of
    further answers (so the bot made progress since it came back)."""
    kills: list[Kill] = []
    for _ in range(cycles):
        target = mock.summary()["answered"] + rng.randint(*answers_between)

        def reached(target: int = target) -> bool:
            return int(mock.summary()["answered"]) >= target

        poll_until(reached, timeout=timeout, what=f"{target} answers")
        kills.append(kill_9(stack))
    return kills


def _read_only(inbox: Path) -> sqlite3.Connection:
    # Beside the running bot: WAL lets a reader in while the bot writes.
    return sqlite3.connect(f"file:{inbox}?mode=ro", uri=True, timeout=5)


def unsettled(inbox: Path) -> int:
    """Events not handled yet plus replies not settled, read beside the running bot (WAL)."""
    with _read_only(inbox) as conn:
        (events,) = conn.execute("SELECT COUNT(*) FROM events WHERE status = 'pending'").fetchone()
        (replies,) = conn.execute(
            "SELECT COUNT(*) FROM replies WHERE state IN ('pending', 'sending', 'uncertain')"
        ).fetchone()
    return int(events + replies)


def reply_states(inbox: Path) -> dict[str, int]:
    """The bot's replies by state (``bot.inbox.ReplyState`` values)."""
    with _read_only(inbox) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM replies GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def wait_settled(stack: LoopbackStack, mock: MockJournal, *, sent: int, timeout: float) -> None:
    """Wait until the mock settled the delivery of all ``sent`` messages (acked or given up),
    then until the bot has no event left to handle and no reply left to send: after that no
    reply, late copy or not, can still arrive. Lost replies are for the caller to count."""

    def delivered() -> bool:
        summary = mock.summary()
        return bool(summary["actions"] == sent and summary["in_flight"] == 0)

    poll_until(delivered, timeout=timeout, what="every message delivered")
    inbox = Path(stack.bot.env["INBOX_PATH"])
    poll_until(lambda: unsettled(inbox) == 0, timeout=timeout, what="the outbox settled")
