"""Replies round-trip through storage; the idempotency key rides beside the handler's metadata."""

from __future__ import annotations

import pytest

from bot.outbox_codec import (
    METADATA_MAX_CHARS,
    ReplyEncodingError,
    decode_reply,
    encode_reply,
    handler_metadata,
    key_from_metadata,
    stamp_key,
)
from bot.routing import Reply


def test_every_reply_field_survives_storage_including_a_lone_surrogate() -> None:
    reply = Reply({"text": "half an emoji \ud83d", "quick_replies": [{"title": "a"}]}, tag="X")
    assert decode_reply(encode_reply(reply)) == reply
    assert encode_reply(reply).isascii()


def test_fields_a_newer_bot_stored_are_ignored_by_an_older_one() -> None:
    assert decode_reply('{"message": {"text": "hi"}, "from_the_future": 1}') == Reply.text("hi")


def test_the_key_is_stamped_without_changing_the_handlers_message() -> None:
    message = {"text": "hi"}
    assert stamp_key(message, 7) == {"text": "hi", "metadata": "mhb1:7"}
    assert message == {"text": "hi"}


@pytest.mark.parametrize("metadata", [None, "", "x", 5, "mhb1:", "mhb1:abc", "other:1"])
def test_metadata_without_a_key_of_ours_has_none(metadata: object) -> None:
    assert key_from_metadata(metadata) is None


def test_handler_metadata_that_does_not_fit_beside_the_key_is_refused() -> None:
    room = METADATA_MAX_CHARS - len("mhb1:12:")
    assert handler_metadata(stamp_key({"metadata": "m" * room}, 12)["metadata"]) == "m" * room
    with pytest.raises(ReplyEncodingError, match="too long"):
        stamp_key({"metadata": "m" * (room + 1)}, 12)
    with pytest.raises(ReplyEncodingError):
        stamp_key({"metadata": {"not": "a string"}}, 12)
