"""The console's own bounded windows onto the journal, kept as records are made.

The journal's queries scan every retained record (100,000 by default), far too slow to run
several times a second while a load test fills it. :class:`ConsoleFeed` listens instead
(a :class:`~mock_meta.journal.JournalListener`, and a
:class:`~mock_meta.delivery.DeliveryObserver` for the event each action was delivered as) and
keeps the newest records of each kind plus the recent conversations, so a snapshot costs the
size of what the page shows.

>>> feed = ConsoleFeed(window=2)
>>> feed.recorded(ActionRecord(1, 0.0, "42", "7", "m_1", "text"))
>>> delivery = DeliveryRecord(2, "dlv_1", "1", "7", "42", "m_1", "text", "messages", False, 0.0)
>>> feed.enqueued(delivery, {"message": {"text": "hi"}})
>>> [(entry.record.mid, entry.event) for entry in feed.conversation("42")]
[('m_1', {'message': {'text': 'hi'}})]
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from mock_meta.journal import (
    ActionRecord,
    AlertRecord,
    AttemptRecord,
    DeliveryRecord,
    SendRecord,
    SubscriptionRecord,
)

DEFAULT_WINDOW = 50
DEFAULT_CONVERSATIONS = 500
DEFAULT_PER_CONVERSATION = 200


@dataclass(slots=True)
class Entry:
    """One conversation item: a user's action (with the event it became) or a Send API call."""

    record: ActionRecord | SendRecord
    event: dict[str, Any] | None = None


class ConsoleFeed:
    """Newest ``window`` deliveries, sends, alerts and subscription changes; the newest
    ``per_conversation`` items of the ``conversations`` most recently active users."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        conversations: int = DEFAULT_CONVERSATIONS,
        per_conversation: int = DEFAULT_PER_CONVERSATION,
    ) -> None:
        self._window = window
        self._conversation_limit = conversations
        self._per_conversation = per_conversation
        self._lock = threading.Lock()
        self.cleared()

    # ---- JournalListener ----------------------------------------------------------------
    def cleared(self) -> None:
        with self._lock:
            self._deliveries: deque[DeliveryRecord] = deque(maxlen=self._window)
            self._sends: deque[SendRecord] = deque(maxlen=self._window)
            self._alerts: deque[AlertRecord] = deque(maxlen=self._window)
            self._subscriptions: deque[SubscriptionRecord] = deque(maxlen=self._window)
            self._threads: OrderedDict[str, deque[Entry]] = OrderedDict()
            # Actions waiting for the event they are delivered as (bounded: some never are).
            self._awaiting_event: OrderedDict[str, Entry] = OrderedDict()

    def recorded(self, record: Any) -> None:
        kind = type(record)  # exact types: this runs for every record the journal makes
        with self._lock:
            if kind is DeliveryRecord:
                self._deliveries.append(record)
            elif kind is SendRecord:
                self._sends.append(record)
                if record.psid is not None:
                    self._thread(record.psid).append(Entry(record))
            elif kind is ActionRecord:
                entry = Entry(record)
                self._thread(record.psid).append(entry)
                if record.mid is not None:
                    self._awaiting_event[record.mid] = entry
                    if len(self._awaiting_event) > self._conversation_limit:
                        self._awaiting_event.popitem(last=False)
            elif kind is AlertRecord:
                self._alerts.append(record)
            elif kind is SubscriptionRecord:
                self._subscriptions.append(record)

    # ---- DeliveryObserver ---------------------------------------------------------------
    def enqueued(self, record: DeliveryRecord, event: dict[str, Any]) -> None:
        if record.mid is None:
            return
        with self._lock:
            entry = self._awaiting_event.pop(record.mid, None)
            if entry is not None:
                entry.event = event

    def attempted(
        self, record: DeliveryRecord, attempt: AttemptRecord, body: bytes, headers: dict[str, str]
    ) -> None:
        """Nothing to keep: the delivery record itself carries its attempts."""

    # ---- reads --------------------------------------------------------------------------
    def deliveries(self) -> list[DeliveryRecord]:
        with self._lock:
            return list(self._deliveries)

    def sends(self) -> list[SendRecord]:
        with self._lock:
            return list(self._sends)

    def alerts(self) -> list[AlertRecord]:
        with self._lock:
            return list(self._alerts)

    def subscriptions(self) -> list[SubscriptionRecord]:
        with self._lock:
            return list(self._subscriptions)

    def conversation(self, psid: str) -> list[Entry]:
        with self._lock:
            return list(self._threads.get(psid, ()))

    def _thread(self, psid: str) -> deque[Entry]:
        thread = self._threads.get(psid)
        if thread is None:
            thread = self._threads[psid] = deque(maxlen=self._per_conversation)
            if len(self._threads) > self._conversation_limit:
                self._threads.popitem(last=False)
        else:
            self._threads.move_to_end(psid)
        return thread
