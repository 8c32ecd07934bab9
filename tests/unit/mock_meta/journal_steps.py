"""Journal steps as the mock's routes and delivery engine take them, for the journal's tests."""

from __future__ import annotations

from typing import Any

from mock_meta.journal import AttemptRecord, DeliveryRecord, Journal, SendRecord

PAGE, PSID, OTHER = "104501234567890", "6543210987654321", "7000000000000001"
_STATUS = {"success": 200, "http_error": 500}


def send(journal: Journal, psid: str = PSID, **kw: Any) -> SendRecord:
    args: dict[str, Any] = {
        "page_id": PAGE,
        "psid": psid,
        "request": {"recipient": {"id": psid}, "message": {"text": "hi"}},
        "response": {"recipient_id": psid, "message_id": "m_reply"},
        "status": 200,
        "message_id": "m_reply",
    }
    args.update(kw)
    return journal.record_send(**args)


def open_delivery(journal: Journal, mid: str, psid: str = PSID) -> DeliveryRecord:
    """The engine queued action ``mid`` for the bot."""
    return journal.record_delivery(
        delivery_id=f"dlv_{mid}",
        app_id="1",
        page_id=PAGE,
        psid=psid,
        mid=mid,
        event_type="text",
        field="messages",
    )


def attempt(
    journal: Journal,
    record: DeliveryRecord,
    outcome: str = "success",
    *,
    mark: int | None = None,
    duplicate: bool = False,
) -> None:
    """One POST of ``record`` ended with ``outcome``; ``mark`` is ``journal.mark()`` taken
    when it started (default: now, so the POST began after everything recorded so far)."""
    journal.delivery_attempted(
        record,
        AttemptRecord(
            len(record.attempts) + 1,
            0.0,
            _STATUS.get(outcome),
            0.01,
            outcome,
            "sha256=x",
            duplicate=duplicate,
            sent_mark=journal.mark() if mark is None else mark,
        ),
    )


def deliver(
    journal: Journal,
    mid: str,
    psid: str = PSID,
    *,
    outcomes: tuple[str, ...] = ("success",),
    finish: str = "delivered",
) -> DeliveryRecord:
    """Journal one delivery of action ``mid`` as the engine does: POSTs, then its settlement."""
    record = open_delivery(journal, mid, psid)
    for outcome in outcomes:
        attempt(journal, record, outcome)
    journal.delivery_finished(record, finish, reason=None if finish == "delivered" else "expired")
    return record


def act(journal: Journal, mid: str, kind: str = "text", psid: str = PSID) -> None:
    """A user action the bot received and acknowledged."""
    journal.record_action(psid, PAGE, mid, kind)
    deliver(journal, mid, psid)
