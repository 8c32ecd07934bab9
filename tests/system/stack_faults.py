"""Traffic and faults on a running loopback stack (bot + mock), for the alert proofs.

``Conversations`` keeps users talking to the bot through the mock; ``Faults`` pairs an
``inject`` and a ``clear`` callable per fault: a signature flood, a Send API outage, a handler
that blocks the loop or fails, the bot stopped, an old event stuck pending, the inbox locked
by another writer, deliveries failing for an hour of platform time. ``MockUsers`` (what
``Faults`` builds on) and ``old_held_event`` / ``store_directly`` serve any bot deployment,
the Redis replicas too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.inbox import Inbox, InboxRecord
from bot.inbox_sqlite import SqliteInbox
from loadtests.processes import LoopbackStack
from mock_meta.settings import DEFAULT_PAGE_ID, DEFAULT_PAGE_TOKEN, DEFAULT_PSID
from tests.polling import wait_until
from tests.system.alert_proof import Repeater

# Actions that the default handlers answer, and a few that they do not.
REPLYING_ACTIONS = (
    {"type": "text", "text": "hello"},
    {"type": "attachment"},
    {"type": "postback", "payload": "GET_STARTED"},
    {"type": "quick_reply", "text": "Green", "payload": "PICK_GREEN"},
)
SILENT_ACTIONS = ({"type": "reaction"}, {"type": "read"})


class Conversations:
    """Background users talking to the bot through the mock until stopped (bounded)."""

    def __init__(self, mock_url: str, users: int = 4, max_turns: int = 5000) -> None:
        self._mock_url = mock_url
        self._users = users
        self._max_turns = max_turns
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.replies = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for _ in range(self._users):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        with httpx.Client(base_url=self._mock_url, timeout=15.0, trust_env=False) as http:
            psid = http.post("/_mock/users", json={}).json()["psid"]
            for turn in range(self._max_turns):
                if self._stop.is_set():
                    return
                action = REPLYING_ACTIONS[turn % len(REPLYING_ACTIONS)]
                sent = http.post(f"/_mock/users/{psid}/actions", json=action).json()
                reply = http.get(
                    "/_mock/wait/reply", params={"psid": psid, "mid": sent["mid"], "timeout": 3}
                )
                if reply.status_code == 200:
                    with self._lock:
                        self.replies += 1
                silent = SILENT_ACTIONS[turn % len(SILENT_ACTIONS)]
                http.post(f"/_mock/users/{psid}/actions", json=silent)


class MockUsers:
    """Users of the mock that text the bot, and a paced repeat of any such action."""

    def __init__(self, mock: httpx.Client, release_file: Path) -> None:
        self.mock = mock
        self.release_file = release_file
        self._repeaters: list[Repeater] = []

    def repeat(self, action: Callable[[], Any], interval: float) -> Callable[[], None]:
        def inject() -> None:
            repeater = Repeater(action, interval)
            self._repeaters.append(repeater)
            repeater.start()

        return inject

    def stop_repeating(self) -> None:
        while self._repeaters:
            self._repeaters.pop().stop()

    def text_and_wait(self, psid: str, text: str) -> None:
        sent = self.mock.post(f"/_mock/users/{psid}/actions", json={"type": "text", "text": text})
        self.mock.get(
            "/_mock/wait/reply", params={"psid": psid, "mid": sent.json()["mid"], "timeout": 10}
        )

    def text(self, psid: str, text: str) -> None:
        self.mock.post(f"/_mock/users/{psid}/actions", json={"type": "text", "text": text})

    def new_user(self) -> str:
        psid: str = self.mock.post("/_mock/users", json={}).json()["psid"]
        return psid

    def release_held_events(self) -> None:
        """Lets every ``hold`` handler of ``tests.system.fault_handlers`` finish."""
        self.release_file.touch()


def old_held_event(psid: str, mid: str, *, age_seconds: float) -> InboxRecord:
    """A ``hold`` text from ``psid`` received ``age_seconds`` ago: stored straight into an
    inbox, it is an old pending event that its handler holds until released."""
    now_ms = int(time.time() * 1000)
    event = {
        "sender": {"id": psid},
        "recipient": {"id": DEFAULT_PAGE_ID},
        "timestamp": now_ms,
        "message": {"mid": mid, "text": "hold"},
    }
    return InboxRecord(
        page_id=DEFAULT_PAGE_ID,
        sender_key=psid,
        kind="text",
        timestamp_ms=now_ms,
        dedup_key=mid,
        payload=json.dumps(event),
        traceparent=None,
        received_at=time.time() - age_seconds,
    )


def store_directly(inbox: Inbox, records: list[InboxRecord]) -> None:
    """Enqueue ``records`` through a separate connection to the bot's storage."""

    async def enqueue() -> None:
        await inbox.open()
        try:
            await inbox.enqueue(records)
        finally:
            await inbox.close()

    asyncio.run(enqueue())


class Faults(MockUsers):
    """The faults of the proof, each a pair of inject/clear callables on the running stack."""

    def __init__(self, stack: LoopbackStack, mock: httpx.Client) -> None:
        self.stack = stack
        self.workdir = Path(stack.bot.env["INBOX_PATH"]).parent
        super().__init__(mock, self.workdir / "release")
        self._lock: sqlite3.Connection | None = None
        self.bot = httpx.Client(base_url=stack.bot_url, trust_env=False, timeout=15.0)

    def unsigned_posts(self) -> None:
        for _ in range(10):
            self.bot.post(
                "/webhook",
                content=b'{"object":"page","entry":[]}',
                headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
            )

    def arm_send_outage(self) -> None:
        armed = self.mock.post(
            "/_mock/faults", json={"code": 2, "http_status": 500, "probability": 1.0}
        )
        assert armed.status_code == 201, armed.text

    def clear_send_faults(self) -> None:
        assert self.mock.delete("/_mock/faults").status_code == 200

    def stop_bot(self) -> None:
        self.stack.bot.stop(grace=2)

    def start_bot(self) -> None:
        self.stack.bot.start()

    def stop_bot_with_an_old_event_left_pending(self) -> None:
        # A "hold" event received 700 s ago (past both thresholds), held by its handler
        # once the bot is back, until the release file appears.
        self.stop_bot()
        record = old_held_event(DEFAULT_PSID, "m_backlog_hold", age_seconds=700)
        store_directly(SqliteInbox(Path(self.stack.bot.env["INBOX_PATH"])), [record])

    def lock_inbox(self) -> None:
        # Another writer holds SQLite's write lock: commits wait out the busy timeout, fail.
        self._lock = sqlite3.connect(self.stack.bot.env["INBOX_PATH"], isolation_level=None)
        self._lock.execute("BEGIN IMMEDIATE")

    def unlock_inbox(self) -> None:
        assert self._lock is not None
        self._lock.execute("ROLLBACK")
        self._lock.close()

    def fail_deliveries_for_an_hour(self) -> None:
        self.stop_bot()
        before = _mock_failed_deliveries(self.stack.mock_url)
        wait_until(
            lambda: _mock_failed_deliveries(self.stack.mock_url) > before,
            timeout=30,
            what="a failed delivery",
        )
        # Platform time jumps past Meta's one hour of failures: the subscription is disabled.
        assert self.mock.post("/_mock/clock/advance", json={"seconds": 3700}).status_code == 200

    def resubscribe(self) -> None:
        self.start_bot()
        answer = self.mock.post(
            f"/v25.0/{DEFAULT_PAGE_ID}/subscribed_apps",
            params={"access_token": DEFAULT_PAGE_TOKEN, "subscribed_fields": "messages"},
        )
        assert answer.status_code == 200, answer.text


def _mock_failed_deliveries(mock_url: str) -> float:
    text = httpx.get(f"{mock_url}/metrics", timeout=10.0, trust_env=False).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mock_meta_delivery_attempts_total"
        and sample.labels.get("outcome") != "success"
    )
