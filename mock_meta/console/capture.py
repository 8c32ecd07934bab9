"""What the console shows that the journal does not keep: queued events and exact POST bytes.

A bounded :class:`~mock_meta.delivery.DeliveryObserver`: the newest ``limit`` deliveries keep
their event and, per attempt, the exact body and headers (shared objects, never copied: the
engine reuses one body for a delivery's immediate retries).

>>> capture = WireCapture(limit=2)
>>> record = DeliveryRecord(1, "dlv_1", "1", "7", "42", "m_1", "text", "messages", False, 0.0)
>>> capture.enqueued(record, {"message": {"text": "hi"}})
>>> capture.queued("dlv_1") == (record, {"message": {"text": "hi"}})
True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from mock_meta.journal import AttemptRecord, DeliveryRecord

DEFAULT_LIMIT = 500


@dataclass(slots=True)
class WirePost:
    """One attempt as it went over the wire."""

    attempt: int
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class _Captured:
    record: DeliveryRecord | None = None
    event: dict[str, Any] | None = None
    posts: list[WirePost] = field(default_factory=list)


class WireCapture:
    """Keeps the newest ``limit`` deliveries' events and bytes (thread-safe, O(1) per call)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[str, _Captured] = OrderedDict()

    def enqueued(self, record: DeliveryRecord, event: dict[str, Any]) -> None:
        with self._lock:
            slot = self._slot(record.delivery_id)
            slot.record, slot.event = record, event

    def attempted(
        self, record: DeliveryRecord, attempt: AttemptRecord, body: bytes, headers: dict[str, str]
    ) -> None:
        with self._lock:
            self._slot(record.delivery_id).posts.append(WirePost(attempt.attempt, body, headers))

    def queued(self, delivery_id: str) -> tuple[DeliveryRecord, dict[str, Any]] | None:
        """The delivery and the event it carries, while still kept (for a redelivery)."""
        with self._lock:
            item = self._items.get(delivery_id)
            if item is None or item.record is None or item.event is None:
                return None
            return item.record, item.event

    def posts(self, delivery_id: str) -> list[WirePost]:
        with self._lock:
            item = self._items.get(delivery_id)
            return list(item.posts) if item is not None else []

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _slot(self, delivery_id: str) -> _Captured:
        item = self._items.get(delivery_id)
        if item is None:
            item = self._items[delivery_id] = _Captured()
            if len(self._items) > self._limit:
                self._items.popitem(last=False)
        return item
