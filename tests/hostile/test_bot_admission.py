"""The admission gate's refusal path skips the body: it must still leave every connection in a
state the client can read (keep-alive, close, ``100-continue``, pipelining, a large body)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.raw_http import RawConnection, assert_still_answers, metric_value, signed_post
from tests.system.conftest import BotProcess, SendApiRecorder, signed_envelope, text_event

pytestmark = pytest.mark.system

StartBot = Callable[..., BotProcess]
REPO_ROOT = Path(__file__).resolve().parents[2]  # the bot process imports tests.system here
FILL_PSID = "8400000000000001"


@pytest.fixture
def release_file(tmp_path: Path) -> Path:
    """Creating this file lets the held event finish (``tests.system.fault_handlers``)."""
    return tmp_path / "release"


@pytest.fixture
def refusing_bot(start_bot: StartBot, release_file: Path) -> BotProcess:
    """A bot whose one accepted event stays in its handler until the test releases it: the
    gate refuses everything meanwhile, however slow the machine (a clock would expire)."""
    bot = start_bot(
        PYTHONPATH=str(REPO_ROOT),
        BOT_HANDLERS_MODULE="tests.system.fault_handlers",
        FAULT_RELEASE_FILE=str(release_file),
        WEBHOOK_BACKLOG_FLOOR_EVENTS="1",
        WEBHOOK_BACKLOG_LIMIT_SECONDS="1",
    )
    assert bot.post_events([text_event("m_fill", psid=FILL_PSID, text="hold")]).status_code == 200
    return bot


def _still_answers_once_drained(
    bot: BotProcess, recorder: SendApiRecorder, release_file: Path
) -> None:
    """Once the held event ran the gate lets POSTs in again, and they are answered."""
    assert not recorder.replies_to(FILL_PSID), "the held event finished before its release"
    release_file.touch()
    assert recorder.wait_for(lambda r: r.replies_to(FILL_PSID), timeout=30)
    assert_still_answers(bot, recorder)


def _post(psid: str, **extra: str) -> bytes:
    body, headers = signed_envelope([text_event(f"m_{psid}", psid=psid)])
    return signed_post(body, {**headers, **extra})


def _head(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[0].lower()


def test_a_refused_post_keeps_the_connection_for_the_next_request(
    refusing_bot: BotProcess, send_api_recorder: SendApiRecorder, release_file: Path
) -> None:
    big = b'{"object":"page","entry":[],"pad":"' + b"x" * (256 * 1024) + b'"}'
    request = signed_post(big, {"Content-Type": "application/json"})
    head, _, body = request.partition(b"\r\n\r\n")
    with RawConnection(refusing_bot.url) as conn:
        assert conn.send(head + b"\r\n\r\n")
        answer = conn.read_answer()  # answered before the body was sent
        assert answer.status == 503, answer.raw[:200]
        assert b"retry-after: 1" in _head(answer.raw)
        assert b"connection: close" not in _head(answer.raw)
        assert answer.raw.endswith(b'{"error":"overloaded, retry later"}')
        for start in range(0, len(body), 65536):  # the discarded body, in pieces
            assert conn.send(body[start : start + 65536])
        assert conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_answer().status == 200
    _still_answers_once_drained(refusing_bot, send_api_recorder, release_file)


def test_pipelined_refused_posts_get_one_answer_each_in_order(
    refusing_bot: BotProcess, send_api_recorder: SendApiRecorder, release_file: Path
) -> None:
    with RawConnection(refusing_bot.url) as conn:
        probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        assert conn.send(_post("8400000000000002") + _post("8400000000000003") + probe)
        raw = conn.read_all(until=lambda got: got.count(b"HTTP/1.1 ") == 3 and got.endswith(b"}"))
    statuses = [int(part[:3]) for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [503, 503, 200], raw[:600]
    _still_answers_once_drained(refusing_bot, send_api_recorder, release_file)


@pytest.mark.parametrize(
    "extra", [{"Connection": "close"}, {"Expect": "100-continue"}], ids=["close", "expect"]
)
def test_a_refused_post_that_cannot_keep_the_connection_is_answered_then_closed(
    refusing_bot: BotProcess,
    send_api_recorder: SendApiRecorder,
    release_file: Path,
    extra: dict[str, str],
) -> None:
    request = _post("8400000000000004", **extra)
    head = request.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    with RawConnection(refusing_bot.url) as conn:
        assert conn.send(head)  # no body yet: a 100-continue client waits for the answer
        answer = conn.read_answer()
        assert answer.status == 503, answer.raw[:200]
        assert b"connection: close" in _head(answer.raw)
        assert conn.closed_within(5.0)
    _still_answers_once_drained(refusing_bot, send_api_recorder, release_file)


def test_whole_refused_posts_one_after_another_keep_the_connection_and_count(
    refusing_bot: BotProcess, send_api_recorder: SendApiRecorder, release_file: Path
) -> None:
    """Posts sent whole, as Meta sends them, are refused without being parsed: each still gets
    its own 503, the connection stays usable, and every refusal is counted."""
    before = metric_value(refusing_bot, "bot_webhook_refused_total", reason="overloaded")
    with RawConnection(refusing_bot.url) as conn:
        for n in range(5):
            assert conn.send(_post(f"84000000000001{n:02d}"))
            answer = conn.read_answer()
            assert answer.status == 503, answer.raw[:200]
            assert b"connection: close" not in _head(answer.raw)
        assert conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_answer().status == 200
    after = metric_value(refusing_bot, "bot_webhook_refused_total", reason="overloaded")
    assert after - before == 5
    _still_answers_once_drained(refusing_bot, send_api_recorder, release_file)
