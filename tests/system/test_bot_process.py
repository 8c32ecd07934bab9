"""The real ``messenger-bot`` process: crashes, graceful stops, start-up checks, dead letters."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.inbox import InboxRecord, NewReply, ReplyState, ReplyUpdate
from bot.inbox_sqlite import SqliteInbox
from bot.outbox_codec import encode_reply
from bot.routing import Reply

pytestmark = pytest.mark.system

# Fixtures come from tests/system/conftest.py; these aliases only shorten the signatures.
StartBot = Callable[..., Any]
Poll = Callable[..., Any]
RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


def pending_events(path: Path) -> int:
    async def count() -> int:
        inbox = SqliteInbox(path)
        await inbox.open()
        try:
            return len(await inbox.pending())
        finally:
            await inbox.close()

    return asyncio.run(count())


def metric(bot: Any, name: str) -> float | None:
    for line in httpx.get(f"{bot.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_kill_9_during_a_burst_loses_no_acknowledged_event(
    start_bot: StartBot, send_api_recorder: Any, webhook_events: Any, poll: Poll
) -> None:
    # Phase 1 holds every event for 10 minutes, so nothing is answered before the crash.
    bot = start_bot(ORDERING_WINDOW_MS="600000")
    psids = [f"77000000000{i:04d}" for i in range(120)]
    acked = bot.burst_until_signal(psids, sig=signal.SIGKILL, after_acks=40)
    assert bot.wait(10) == -signal.SIGKILL
    assert len(acked) >= 40
    assert send_api_recorder.requests == []

    restarted = start_bot()
    assert send_api_recorder.wait_for(lambda r: all(r.replies_to(p) for p in acked), timeout=60)
    poll(lambda: metric(restarted, "bot_inbox_pending_events") == 0, timeout=30)
    for psid in acked:
        assert len(send_api_recorder.replies_to(psid)) == 1
    for psid in set(psids) - set(acked):
        assert len(send_api_recorder.replies_to(psid)) <= 1  # stored but unacked: at most once


def test_sigterm_finishes_the_reply_in_flight(
    start_bot: StartBot, send_api_recorder: Any, webhook_events: Any, poll: Poll
) -> None:
    send_api_recorder.hold()
    bot = start_bot()
    assert bot.post_events([webhook_events.text("m_term", psid="880001")]).status_code == 200
    assert send_api_recorder.wait_for(lambda r: len(r.requests) == 1)  # the send is in flight

    bot.signal(signal.SIGTERM)
    poll(lambda: "Waiting for application shutdown" in bot.stderr())
    send_api_recorder.release()

    # uvicorn re-raises the signal after a clean shutdown, so the exit status is SIGTERM's.
    assert bot.wait(30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in bot.stderr()
    assert len(send_api_recorder.replies_to("880001")) == 1
    assert pending_events(bot.inbox_path) == 0  # marked done: a restart will not reply again


def test_missing_secret_stops_start_up_naming_the_variable(
    bot_env: dict[str, str], run_bot_cli: RunCli
) -> None:
    env = {k: v for k, v in bot_env.items() if k != "MESSENGER_APP_SECRET"}
    env["MESSENGER_VERIFY_TOKEN"] = "verify-value-must-not-print"
    env["MESSENGER_PAGE_ACCESS_TOKEN"] = "page-value-must-not-print"
    done = run_bot_cli("serve", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "messenger-bot: missing required setting MESSENGER_APP_SECRET"
    ]
    assert "must-not-print" not in done.stdout + done.stderr


def test_dead_letters_cli_lists_and_replays_into_a_running_bot(
    start_bot: StartBot,
    send_api_recorder: Any,
    bot_env: dict[str, str],
    run_bot_cli: RunCli,
    webhook_events: Any,
) -> None:
    inbox_path = Path(bot_env["INBOX_PATH"])

    def _record(event: dict[str, Any], psid: str) -> InboxRecord:
        return InboxRecord(
            page_id=webhook_events.page_id,
            sender_key=psid,
            kind="text",
            timestamp_ms=event["timestamp"],
            dedup_key=f"mid:m_{psid}",
            payload=json.dumps(event),
            traceparent=None,
            received_at=time.time(),
        )

    async def seed() -> list[int]:
        inbox = SqliteInbox(inbox_path)
        await inbox.open()
        ids = []
        for psid in ("990001", "990002"):
            event = webhook_events.text(f"m_{psid}", psid=psid)
            [stored] = await inbox.enqueue([_record(event, psid)])
            assert stored is not None
            await inbox.dead_letter(stored.id, "handler crashed: KeyError")
            ids.append(stored.id)
        # A reply the Send API would not take: its event is done, the reply is the dead letter.
        event = webhook_events.text("m_990003", psid="990003")
        [answered] = await inbox.enqueue([_record(event, "990003")])
        assert answered is not None
        body = encode_reply(Reply.text("late but there"))
        [reply] = await inbox.commit_handled(
            answered.id, [NewReply(0, webhook_events.page_id, "990003", body)]
        )
        await inbox.update_replies([ReplyUpdate(reply.id, ReplyState.DEAD, 4, "Graph down")])
        await inbox.touch_window(webhook_events.page_id, "990003", event["timestamp"])
        ids.append(reply.id)
        await inbox.close()
        return ids

    first, second, undeliverable = asyncio.run(seed())
    # The CLI needs only INBOX_PATH: no secrets in its environment.
    env = {k: v for k, v in bot_env.items() if not k.startswith("MESSENGER_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_bot_cli(*args, env=env)

    listed = cli("dead-letters", "list", "--json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert [(r["kind"], r["id"], r["error"]) for r in rows] == [
        ("handler_failed", first, "handler crashed: KeyError"),
        ("handler_failed", second, "handler crashed: KeyError"),
        ("reply_undeliverable", undeliverable, "Graph down"),
    ]
    assert rows[2]["reply"]["message"] == {"text": "late but there"}
    human = cli("dead-letters", "list")
    assert str(first) in human.stdout and "handler crashed" in human.stdout

    bot = start_bot()
    assert send_api_recorder.requests == []  # dead letters are not retried on their own
    replayed = cli("dead-letters", "replay", "--id", str(first))
    assert (replayed.returncode, replayed.stdout.strip()) == (0, "replayed 1 dead letter")

    assert send_api_recorder.wait_for(lambda r: r.replies_to("990001"), timeout=30)
    replayed = cli("dead-letters", "replay", "--reply-id", str(undeliverable))
    assert (replayed.returncode, replayed.stdout.strip()) == (0, "replayed 1 dead letter")
    assert send_api_recorder.wait_for(lambda r: r.replies_to("990003"), timeout=30)
    assert [r["id"] for r in json.loads(cli("dead-letters", "list", "--json").stdout)] == [second]
    assert send_api_recorder.replies_to("990002") == []
    bot.signal(signal.SIGTERM)
    assert bot.wait(30) in (0, -signal.SIGTERM)
