"""How an outbox reply is stored, and the idempotency key it carries to Graph (pure).

A ``Reply`` is stored as JSON of every dataclass field, so fields the handler API adds later
flow through unchanged.

Every send carries its reply's key in ``message.metadata``, which Meta echoes back in
``message_echoes`` (reference §3.6); the echo proves a reply reached the platform. The form is
``mhb1:<reply id>`` or, when the handler set metadata of its own, ``mhb1:<reply id>:<its
metadata>`` (Graph allows 1,000 characters in all, so the handler has ``1000 - len(prefix)``).

>>> stamped = stamp_key({"text": "hi", "metadata": "order-7"}, 42)
>>> stamped["metadata"]
'mhb1:42:order-7'
>>> key_from_metadata(stamped["metadata"]), handler_metadata(stamped["metadata"])
(42, 'order-7')
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from bot.routing import Reply

KEY_PREFIX = "mhb1:"
METADATA_MAX_CHARS = 1000


class ReplyEncodingError(ValueError):
    """A reply that cannot be stored or sent as it is (retrying cannot help)."""


def encode_reply(reply: Reply) -> str:
    """The reply as stored in the outbox (JSON; lone surrogates survive as escapes)."""
    fields = {f.name: getattr(reply, f.name) for f in dataclasses.fields(reply)}
    try:
        return json.dumps(fields, ensure_ascii=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ReplyEncodingError(f"reply is not JSON-serialisable: {exc}") from exc


def decode_reply(body: str) -> Reply:
    """The ``Reply`` back from storage; unknown stored fields (from a newer bot) are ignored."""
    data = json.loads(body)
    names = _reply_fields()
    return Reply(**{k: v for k, v in data.items() if k in names})


@functools.cache
def _reply_fields() -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(Reply))


def stamp_key(message: dict[str, Any], reply_id: int) -> dict[str, Any]:
    """A copy of ``message`` whose ``metadata`` carries the reply's key (see the module doc)."""
    own = message.get("metadata")
    if own is not None and not isinstance(own, str):
        raise ReplyEncodingError("message.metadata must be a string")
    metadata = f"{KEY_PREFIX}{reply_id}" + (f":{own}" if own else "")
    if len(metadata) > METADATA_MAX_CHARS:
        raise ReplyEncodingError(
            f"message.metadata too long: {len(own or '')} chars, at most"
            f" {METADATA_MAX_CHARS - len(metadata) + len(own or '')} fit beside the key"
        )
    return {**message, "metadata": metadata}


def key_from_metadata(metadata: object) -> int | None:
    """The reply id in an echoed ``metadata``, or ``None`` when it carries no key of ours."""
    if not isinstance(metadata, str) or not metadata.startswith(KEY_PREFIX):
        return None
    digits = metadata[len(KEY_PREFIX) :].partition(":")[0]
    return int(digits) if digits.isdigit() else None


def handler_metadata(metadata: str) -> str | None:
    """The handler's own part of a stamped ``metadata`` (``None`` when it set none)."""
    if key_from_metadata(metadata) is None:
        return metadata
    _, sep, own = metadata[len(KEY_PREFIX) :].partition(":")
    return own if sep else None
