"""The edge's per-iteration check of the inbox file (``InboxFileGuard.intact_after_commit``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.inbox_guard import InboxFileGuard


async def test_a_file_deleted_between_iterations_is_seen_by_the_next_ack(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox.db"
    inbox.write_bytes(b"")
    guard = InboxFileGuard(inbox)
    assert guard.intact_after_commit()
    inbox.unlink()
    assert guard.intact_after_commit()  # the same iteration shares the first look
    await asyncio.sleep(0)  # the acks of a later commit resume in a later iteration
    assert not guard.intact_after_commit()
    assert guard.lost_reason == "inbox file deleted"
    await asyncio.sleep(0)
    assert not guard.intact_after_commit()  # and it stays lost
