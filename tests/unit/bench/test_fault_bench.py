"""The fault runs' own logic: counting answers per message, and the unencodable reply."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest

import bench.reply_tally
import bench.unencodable_handlers
from bench.reply_tally import ReplyTally, batched, reply_seconds, reply_texts, tally
from bench.unencodable_handlers import router, truncate_utf16
from bot.testing import RouterClient, texts


def _send(text: str, *, status: int = 200, error_code: int | None = None) -> dict[str, Any]:
    return {
        "kind": "message",
        "status": status,
        "error_code": error_code,
        "request": {"recipient": {"id": "1"}, "message": {"text": text}},
    }


def test_each_message_is_counted_as_lost_once_or_doubled_by_its_echoed_text() -> None:
    replies = ["You said: n0", "You said: n2", "You said: n2", "You said: n2", "Welcome!"]

    result = tally(["n0", "n1", "n2"], replies)

    assert result == ReplyTally(asked=3, lost=1, once=1, doubled=1, copies=2, unmatched=1)
    assert result.doubled_share() == pytest.approx(1 / 3)


def test_a_reply_to_a_text_nobody_asked_is_unmatched_not_an_answer() -> None:
    assert tally(["n1"], ["You said: n10"]) == ReplyTally(1, 1, 0, 0, 0, 1)


def test_texts_asked_twice_are_refused_because_replies_could_not_be_told_apart() -> None:
    with pytest.raises(ValueError, match="unique"):
        tally(["n1", "n1"], [])


def test_only_messages_the_platform_accepted_count_as_replies() -> None:
    sends = [
        _send("You said: a"),
        _send("You said: b", status=500, error_code=2),  # an outage's refused call
        _send("You said: c", status=200, error_code=1),
        {**_send(""), "kind": "sender_action"},
        {**_send(""), "request": {"message": json.dumps({"text": "You said: d"})}},  # form call
    ]

    assert reply_texts(sends) == ["You said: a", "You said: d"]


def test_replies_sent_as_items_of_a_graph_batch_are_told_from_single_calls() -> None:
    alone = {**_send("You said: a"), "call": {"token_source": "body"}}
    in_batch = {**_send("You said: b"), "call": {"token_source": "batch"}}
    refused = {**_send("You said: c", status=500, error_code=2), "call": {"token_source": "batch"}}

    assert batched([alone, in_batch, refused, _send("You said: d")]) == 1


def test_reply_times_are_those_of_first_answers_only() -> None:
    first = {**_send("You said: a"), "attribution": "answer", "time_to_reply_seconds": 0.25}
    copy = {**_send("You said: a"), "attribution": "extra", "time_to_reply_seconds": None}
    refused = {**_send("x", status=500, error_code=2), "attribution": None}

    assert reply_seconds([first, copy, refused]) == [0.25]


def test_cutting_an_emoji_in_half_leaves_a_lone_surrogate_that_utf8_refuses() -> None:
    cut = truncate_utf16("ok \N{GRINNING FACE}", 4)

    assert cut == "ok \ud83d"
    with pytest.raises(UnicodeEncodeError):
        cut.encode("utf-8")


async def test_the_bench_handlers_cut_only_the_marked_messages() -> None:
    client = RouterClient(router)

    (cut,) = await client.text("cut n7 \N{GRINNING FACE}")
    (plain,) = await client.text("n8 \N{GRINNING FACE}")

    assert texts([cut]) == ["You said: cut n7 \ud83d"]
    assert texts([plain]) == ["You said: n8 \N{GRINNING FACE}"]


@pytest.mark.parametrize("module", [bench.reply_tally, bench.unencodable_handlers])
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
