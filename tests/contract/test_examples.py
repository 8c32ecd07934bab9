"""Each example bot, run against the mock exactly as ``python -m examples NAME`` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.testing import PSID, RecordingHandoff
from examples.run import SCRIPTS, describe, main, running


async def play(name: str, tmp_path: Path, **deps: Any) -> list[list[str]]:
    """What the bot sent for each step of the example's script."""
    async with running(name, workdir=tmp_path, deps=deps) as chat:
        return [[describe(request) for request in await step(chat)] for _, step in SCRIPTS[name]]


async def test_faq_bot_answers_topics_and_questions_with_quick_replies(tmp_path: Path) -> None:
    chips = "  ['Opening hours', 'Delivery', 'Returns']"
    assert await play("faq", tmp_path) == [
        ["Hi! What would you like to know?" + chips],
        ["Delivery is free over 30 EUR.", "Anything else?" + chips],
        ["We're open 9:00-18:00, Mon-Sat.", "Anything else?" + chips],
        ["Sorry, I didn't get that. Pick a topic:" + chips],
    ]


async def test_lead_capture_bot_keeps_its_place_in_state_and_hands_over_the_lead(
    tmp_path: Path,
) -> None:
    leads: list[dict[str, str]] = []
    assert await play("lead", tmp_path, leads=leads) == [
        ["Happy to prepare a quote. What's your name?"],
        ["Thanks Ada! Your e-mail?  ['user_email']"],
        ["That doesn't look like an e-mail address. Try again?"],
        ["And a phone number?  ['user_phone_number']"],
        ["Thanks Ada, we'll call you on +44 20 7946 0958 within a day."],
    ]
    assert leads == [{"name": "Ada", "email": "ada@example.com", "phone": "+44 20 7946 0958"}]


async def test_handoff_bot_passes_the_thread_and_takes_it_back(tmp_path: Path) -> None:
    handoff = RecordingHandoff()
    assert await play("handoff", tmp_path, handoff=handoff) == [
        ["I'm the bot. Type 'human' to talk to a person."],
        ["A person from our team will answer here. Type 'bot' to come back to me."],
        ["I'm back. Ask me anything, or type 'human' again."],
        ["A person from our team will answer here. Type 'bot' to come back to me."],
        ["Thanks for waiting. I'm the bot again; type 'human' any time."],
    ]
    assert handoff.calls == [
        ("pass_thread_control", PSID),
        ("take_thread_control", PSID),
        ("pass_thread_control", PSID),
    ]


async def test_the_one_command_prints_the_chat(capsys: pytest.CaptureFixture[str]) -> None:
    assert await main(["faq"]) == 0
    out = capsys.readouterr().out
    assert "user: taps Get Started\n  bot: Hi! What would you like to know?" in out
