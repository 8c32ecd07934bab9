"""``mock-meta trigger`` through a running mock, and ``mock-meta check`` end to end."""

from __future__ import annotations

import io
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.procs import free_port
from mock_meta.check.cli import run_check_command
from mock_meta.cli import _parser, trigger
from mock_meta.testing import EchoBot, EchoBotWorld, LoopbackServer, echo_bot_world

PSID = "6543210987654321"


@pytest.fixture
async def world() -> AsyncIterator[EchoBotWorld]:
    async with echo_bot_world() as world:
        yield world


async def test_trigger_goes_through_the_mock_and_shows_the_bots_reply(
    world: EchoBotWorld,
) -> None:
    args = _parser().parse_args(
        ["trigger", "text", "--text", "hi there", "--mock", world.server.base_url]
    )
    out = io.StringIO()
    assert await trigger(args, out=out) == 0
    printed = out.getvalue()
    assert "OK: the bot acknowledged with HTTP 200" in printed
    assert "bot replied: 'echo: hi there'" in printed
    # Through the mock's world: the user's window opened, so the reply was accepted.
    sends = world.server.runtime.journal.sends(psid=PSID)
    assert [s.status for s in sends] == [200]


async def test_trigger_without_a_running_mock_says_how_to_start_one(
    closed_port: int,
) -> None:
    args = _parser().parse_args(["trigger", "text", "--mock", f"http://127.0.0.1:{closed_port}"])
    out = io.StringIO()
    assert await trigger(args, out=out) == 1
    assert "mock-meta serve" in out.getvalue()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_check_writes_the_report_card_and_fails_a_naive_bot(
    closed_port: int, tmp_path: Path
) -> None:
    bot = EchoBot(graph_url=f"http://127.0.0.1:{closed_port}")  # the mock check starts there
    async with LoopbackServer(bot.app()) as bot_server:
        args = _parser().parse_args(
            [
                "check",
                f"{bot_server.base_url}/webhook",
                "--port",
                str(closed_port),
                "--only",
                "handshake,wrong_signature,duplicates",
                "--conversation",
                str(_conversation(tmp_path)),
                "--junit",
                str(tmp_path / "card.xml"),
                "--markdown",
                str(tmp_path / "card.md"),
            ]
        )
        out = io.StringIO()
        status = await run_check_command(args, out=out)
        await bot.settle()
    printed = out.getvalue()
    assert status == 1, printed
    assert "PASS  wrong_signature" in printed
    assert "FAIL  handshake" in printed  # the EchoBot echoes the challenge whatever the token
    assert "FAIL  duplicates" in printed
    assert "deduplicate on message.mid" in printed and "§4" in printed
    suite = ET.parse(tmp_path / "card.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    assert "duplicates" in (tmp_path / "card.md").read_text()


async def test_check_refuses_an_unknown_check_name_before_starting() -> None:
    args = _parser().parse_args(["check", "http://127.0.0.1:9/webhook", "--only", "telepathy"])
    out = io.StringIO()
    assert await run_check_command(args, out=out) == 2
    assert "unknown checks ['telepathy']" in out.getvalue()


def _conversation(tmp_path: Path) -> Path:
    path = tmp_path / "conversation.yaml"
    path.write_text(
        "# the EchoBot answers 'echo: <text>'\n"
        "turns:\n"
        "  - text: ping\n"
        "    reply_contains: 'echo: {text}'\n"
    )
    return path


async def test_check_stops_at_once_when_nothing_answers_at_the_callback(
    closed_port: int, tmp_path: Path
) -> None:
    args = _parser().parse_args(
        [
            "check",
            f"http://127.0.0.1:{closed_port}/webhook",
            "--port",
            str(free_port()),
            "--junit",
            str(tmp_path / "card.xml"),
            "--markdown",
            str(tmp_path / "card.md"),
        ]
    )
    out = io.StringIO()
    assert await run_check_command(args, out=out) == 1
    printed = out.getvalue()
    assert "FAIL  reachable" in printed and "start the bot" in printed
    assert "1 passed" not in printed and "0 passed, 1 failed" in printed
