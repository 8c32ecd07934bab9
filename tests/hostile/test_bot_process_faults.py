"""Classes that held in the red-team run, kept as regressions: a graceful stop mid-burst loses
no acked event and sends no reply twice, and the bot binds loopback unless told."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import pytest

from bot.settings import BotSettings
from tests.hostile.raw_http import assert_still_answers
from tests.system.conftest import BotProcess, SendApiRecorder

pytestmark = pytest.mark.system

StartBot = Callable[..., BotProcess]


def test_a_graceful_stop_mid_burst_loses_no_acked_event_and_doubles_no_reply(
    start_bot: StartBot, send_api_recorder: SendApiRecorder
) -> None:
    # kill -9 mid-burst is tests/system/test_bot_process.py's; this is SIGTERM's twin.
    psids = [f"75000000000{i:05d}" for i in range(300)]
    bot = start_bot()
    acked = bot.burst_until_signal(psids, sig=signal.SIGTERM, after_acks=100)
    assert bot.wait(30) in (0, -signal.SIGTERM)
    assert len(acked) >= 100

    restarted = start_bot()  # same inbox: whatever was acked and still pending is answered now
    assert send_api_recorder.wait_for(lambda r: all(r.replies_to(p) for p in acked), timeout=60), (
        "an acked event was never answered"
    )
    assert_still_answers(restarted, send_api_recorder)
    replies = Counter(r.recipient for r in send_api_recorder.answered() if r.recipient in psids)
    assert max(replies.values()) == 1, replies.most_common(3)


def test_the_bot_binds_loopback_unless_told_otherwise() -> None:
    settings = BotSettings(
        MESSENGER_VERIFY_TOKEN="v", MESSENGER_APP_SECRET="s", MESSENGER_PAGE_ACCESS_TOKEN="t"
    )
    assert settings.host == "127.0.0.1"
