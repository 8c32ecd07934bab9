"""Saved attachments (``attachment_id``) and what an echo shows of a sent attachment.

Reference §5.4 and §9.5: an attachment saved with ``is_reusable: true`` or through
``/me/message_attachments`` gets an id usable only by the Page that saved it, for 90 days;
a Send API call naming an unknown or foreign id fails with 100/2018074. Pure: time is passed in.

>>> store = AttachmentStore(ids=iter(["1857777774821032"]))
>>> store.save("p1", "image", "https://example.com/a.jpg", now=0.0)
'1857777774821032'
>>> sent = {"attachment": {"type": "image", "payload": {"attachment_id": "1857777774821032"}}}
>>> echo_attachments(sent, store, "p1")
[{'type': 'image', 'payload': {'url': 'https://example.com/a.jpg'}}]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mock_meta.graph_body import UploadedFile
from mock_meta.graph_errors import graph_error

TTL_SECONDS = 90 * 24 * 3600.0
MEDIA_TYPES = ("image", "audio", "video", "file")
_CDN = "https://cdn.fbsbx.com/v/t59.2708-21"


@dataclass(frozen=True)
class SavedAttachment:
    attachment_id: str
    page_id: str
    type: str
    url: str
    saved_at: float


def cdn_url(upload: UploadedFile) -> str:
    """Where Meta would host an uploaded file (the mock keeps no bytes, only the hash)."""
    return f"{_CDN}/{upload.sha256[:24]}/{upload.filename or 'file'}"


class AttachmentStore:
    """Reusable attachments per Page; ids expire after :data:`TTL_SECONDS` of platform time."""

    def __init__(self, ids: Iterator[str] | None = None) -> None:
        self._ids = ids or (str(n) for n in itertools.count(1_857_777_774_821_032))
        self._saved: dict[str, SavedAttachment] = {}

    def save(self, page_id: str, type_: str, url: str, *, now: float) -> str:
        attachment_id = next(self._ids)
        self._saved[attachment_id] = SavedAttachment(attachment_id, page_id, type_, url, now)
        return attachment_id

    def get(self, page_id: str, attachment_id: str, *, now: float | None = None) -> SavedAttachment:
        """The saved attachment, or Graph's 100/2018074 (unknown, foreign or expired)."""
        saved = self._saved.get(str(attachment_id))
        fresh = saved is not None and (now is None or now - saved.saved_at <= TTL_SECONDS)
        if saved is None or saved.page_id != page_id or not fresh:
            raise graph_error(100, 2018074)
        return saved

    def clear(self) -> None:
        self._saved.clear()

    def __len__(self) -> int:
        return len(self._saved)


def media_attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-template attachment of a Send API message (``attachment`` or ``attachments``)."""
    if "attachment" not in message and "attachments" not in message:
        return []  # the usual text reply, on the Send API's hot path
    items = message.get("attachments") or []
    single = message.get("attachment")
    if isinstance(single, dict):
        items = [single, *items]
    return [a for a in items if isinstance(a, dict) and a.get("type") in MEDIA_TYPES]


def check_attachment_ids(
    message: dict[str, Any], store: AttachmentStore, page_id: str, *, now: float
) -> None:
    """Refuse a send that reuses an id this Page cannot use (100/2018074)."""
    for attachment in media_attachments(message):
        attachment_id = attachment.get("payload", {}).get("attachment_id")
        if attachment_id is not None:
            store.get(page_id, attachment_id, now=now)


def echo_attachments(
    message: dict[str, Any],
    store: AttachmentStore,
    page_id: str,
    *,
    upload: UploadedFile | None = None,
) -> list[dict[str, Any]] | None:
    """The ``attachments`` of the echo of ``message`` (reference §3.6), or ``None``.

    Media echo as ``{type, payload: {url}}`` (a saved id resolves to its URL, an upload to a
    CDN URL); templates echo their payload, with attachment ids as numbers, as Meta does.
    """
    items: list[dict[str, Any]] = []
    sources = [message["attachment"]] if isinstance(message.get("attachment"), dict) else []
    sources += [a for a in message.get("attachments") or [] if isinstance(a, dict)]
    for attachment in sources:
        payload = attachment.get("payload") or {}
        if attachment.get("type") == "template":
            items.append({"type": "template", "payload": _numeric_ids(payload)})
            continue
        url = payload.get("url")
        if payload.get("attachment_id") is not None:
            url = store.get(page_id, payload["attachment_id"]).url
        elif url is None and upload is not None:
            url = cdn_url(upload)
        items.append({"type": attachment.get("type"), "payload": {"url": url}})
    sticker = message.get("sticker_id")
    if sticker is not None:
        items.append(
            {
                "type": "image",
                "payload": {"url": f"{_CDN}/sticker/{sticker}", "sticker_id": sticker},
            }
        )
    return items or None


def _numeric_ids(value: Any) -> Any:
    """Template echoes carry attachment ids as numbers while the Send API takes strings."""
    if isinstance(value, dict):
        return {
            k: int(v) if k == "attachment_id" and str(v).isdigit() else _numeric_ids(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_numeric_ids(v) for v in value]
    return value
