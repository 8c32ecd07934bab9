"""A broken disk under a running bot (issue 9 "Inbox integrity"): the inbox file deleted, the
disk full, a fatal SIGBUS. The bot must stop acking what it cannot keep, say so on ``/readyz``
and in its log, and answer again once the disk is back (or after a restart)."""

from __future__ import annotations

import resource
import signal
from collections.abc import Callable

import httpx
import pytest

from tests.hostile.raw_http import assert_still_answers
from tests.system.conftest import BotProcess, SendApiRecorder, text_event

pytestmark = pytest.mark.system

StartBot = Callable[..., BotProcess]


def readyz(bot: BotProcess) -> httpx.Response:
    return httpx.get(f"{bot.url}/readyz", timeout=10)


def test_a_deleted_inbox_stops_acks_and_readiness_until_a_restart_answers_again(
    start_bot: StartBot, send_api_recorder: SendApiRecorder
) -> None:
    # The red team: after `rm -rf var/` all 200 acked events vanished at the next restart.
    bot = start_bot()
    assert_still_answers(bot, send_api_recorder)
    for path in bot.inbox_path.parent.glob(bot.inbox_path.name + "*"):
        path.unlink()

    statuses = [
        bot.post_events([text_event(f"m_lost_{n}", psid="7400000000000001")]).status_code
        for n in range(5)
    ]
    assert statuses == [503] * 5
    assert readyz(bot).status_code == 503
    assert bot.stderr().count('"level": "CRITICAL"') == 1

    bot.stop()
    assert_still_answers(start_bot(), send_api_recorder)


def test_a_full_disk_fails_readiness_and_the_bot_answers_again_when_it_clears(
    start_bot: StartBot, send_api_recorder: SendApiRecorder, poll: Callable[..., object]
) -> None:
    # A file-size limit of one byte refuses every new block, as a full disk does.
    bot = start_bot()
    limits = resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE, (1, limits[1]))
    try:
        ready = readyz(bot)
        assert ready.status_code == 503
        assert ready.json()["reason"] == "inbox disk not writable"
        full = bot.post_events([text_event("m_full", psid="7400000000000002")])
        assert full.status_code in (200, 503)  # SQLite may still fit it in an allocated page
    finally:
        resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE, limits)
    poll(lambda: readyz(bot).status_code == 200, timeout=20, what="ready again")
    assert_still_answers(bot, send_api_recorder)


def test_a_fatal_sigbus_leaves_its_reason_in_the_log(start_bot: StartBot) -> None:
    # A read-only remount under SQLite's shared-memory map kills the process with SIGBUS.
    bot = start_bot()
    bot.signal(signal.SIGBUS)
    bot.wait(20)
    assert "Fatal Python error: Bus error" in bot.stderr()
