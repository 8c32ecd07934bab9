"""kill -9 cycles of a real bot under steady traffic through a real mock with echoes on.

Every user message must be answered exactly once, counted from the mock's journal (each
reply echoes its message's unique text; ``bench.reply_tally``) and by the mock itself: the
outbox commits replies with the handled mark, stores ``sending`` before each call, and
settles a reply left ``sending`` by the crash with the echo that carries its key.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fault_stack import (
    FAULT_BOT_ENV,
    MockJournal,
    Traffic,
    kill_9_cycles,
    wait_settled,
)
from bench.reply_tally import reply_texts, tally
from loadtests.processes import LoopbackStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

USERS = 20
CYCLES = 5
RATE = 50  # user messages/s offered


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LoopbackStack]:
    # NORMAL survives kill -9 (not power loss): enough here, and quicker than FULL.
    env = {**FAULT_BOT_ENV, "INBOX_SYNCHRONOUS": "NORMAL"}
    with LoopbackStack.start(tmp_path / "var", bot_env=env) as running:
        yield running


def test_kill_9_cycles_under_steady_traffic_answer_every_message_exactly_once(
    stack: LoopbackStack,
) -> None:
    with MockJournal(stack.mock_url) as mock:
        mock.squeeze_retries()
        users = mock.new_users(USERS)
        with Traffic(stack.mock_url, users, rate=RATE) as traffic:
            kill_9_cycles(stack, mock, cycles=CYCLES, rng=random.Random(7))
        wait_settled(stack, mock, sent=traffic.sent, timeout=90)
        answers = tally(traffic.texts, reply_texts(mock.sends(users)))
        summary = mock.summary()

    assert traffic.sent > 5 * CYCLES
    assert (answers.lost, answers.doubled, answers.unmatched) == (0, 0, 0)
    # The mock's own accounting agrees: every message answered, no extra reply.
    assert (summary["answered"], summary["extra_replies"]) == (traffic.sent, 0)
