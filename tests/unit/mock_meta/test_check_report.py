"""``mock-meta check``'s pure parts: the conversation file and the report card formats."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mock_meta.check.conversation import (
    DEFAULT_CONVERSATION,
    ConversationError,
    Turn,
    load_conversation,
)
from mock_meta.check.report import (
    CheckResult,
    ReportCard,
    Status,
    format_junit,
    format_markdown,
    format_table,
)

CARD = ReportCard(
    "http://127.0.0.1:8000/webhook",
    [
        CheckResult("handshake", "Verification handshake", Status.PASSED, "challenge echoed"),
        CheckResult(
            "duplicates",
            "Redelivered event answered once",
            Status.FAILED,
            "2 of 3 redelivered events answered twice",
            fix="deduplicate on message.mid",
            fact="reference §4: duplicates are possible",
            seconds=1.5,
        ),
        CheckResult("order", "Per-user order", Status.SKIPPED, "skipped: one text turn"),
    ],
)


def test_the_default_conversation_fits_an_echo_bot() -> None:
    turns = DEFAULT_CONVERSATION.turns
    assert all(t.accepts(f"You said: {t.text}") for t in turns)
    assert not turns[0].accepts("Welcome!") and not turns[0].accepts(None)


def test_a_conversation_file_is_read_with_every_kind_of_turn(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(
        "turns:\n"
        "  - postback: GET_STARTED\n"
        "    reply_matches: '(?i)welcome'\n"
        "  - quick_reply: RED\n"
        "    text: Red\n"
        "  - text: bye\n"
        "    reply: none\n"
    )
    welcome, red, bye = load_conversation(path).turns
    assert welcome.action == {"type": "postback", "payload": "GET_STARTED"}
    assert welcome.accepts("Welcome. Tell me what you need.")
    assert red.action == {"type": "quick_reply", "payload": "RED", "text": "Red"}
    assert not bye.expects_reply and bye.expectation() == "no reply"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("turns: []\n", "turns"),
        ("turns:\n  - reply_contains: x\n", "needs text, postback or quick_reply"),
        ("turns:\n  - text: a\n    reply_matches: '('\n", "not a regular expression"),
        ("turns:\n  - text: a\n    colour: red\n", "colour"),
        ("turns: [", "not valid YAML"),
    ],
)
def test_a_bad_conversation_file_is_refused_with_where_and_why(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConversationError, match=reason):
        load_conversation(path)


def test_a_missing_conversation_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConversationError, match="cannot read"):
        load_conversation(tmp_path / "nope.yaml")


def test_the_terminal_table_lists_every_check_then_what_to_fix() -> None:
    table = format_table(CARD)
    assert "PASS  handshake" in table and "SKIP  order" in table
    assert "- duplicates: deduplicate on message.mid" in table
    assert "Platform fact: reference §4" in table
    assert table.endswith("1 passed, 1 failed, 1 skipped")
    assert not CARD.ok


def test_junit_xml_has_one_case_per_check_with_failures_and_skips() -> None:
    suite = ET.fromstring(format_junit(CARD).split("?>", 1)[1])
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='duplicates']/failure")
    assert failure is not None and "deduplicate on message.mid" in (failure.text or "")
    assert suite.find("testcase[@name='order']/skipped") is not None


def test_markdown_report_has_a_table_and_a_fix_section() -> None:
    markdown = format_markdown(CARD)
    assert "| FAIL | Redelivered event answered once |" in markdown
    assert "## What to fix" in markdown and "> Platform fact: reference §4" in markdown


def test_a_turn_fills_the_sent_text_into_its_expectation() -> None:
    turn = Turn(text="ping", reply_contains="echo: {text}")
    assert turn.expectation() == "a reply containing 'echo: ping'"
