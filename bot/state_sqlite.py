"""``StateStore`` in SQLite: one row of JSON per conversation, in its own file and table.

>>> store = SqliteStateStore("var/state.db")                     # doctest: +SKIP
>>> router = Router(state_store=store)                           # doctest: +SKIP

The connection opens on first use (not at import) and every call runs in a worker thread,
so the event loop never waits on the disk. WAL mode lets readers run beside the writer.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from bot.state import encode_state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_state (
    page_id TEXT NOT NULL,
    psid TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (page_id, psid)
) WITHOUT ROWID
"""


class SqliteStateStore:
    """Durable conversation state; ``synchronous`` FULL survives power loss, NORMAL crashes."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def load(self, page_id: str, psid: str) -> dict[str, Any]:
        row = await asyncio.to_thread(self._load, page_id, psid)
        return json.loads(row) if row is not None else {}

    async def save(self, page_id: str, psid: str, data: dict[str, Any]) -> None:
        encoded = encode_state(data) if data else None
        await asyncio.to_thread(self._save, page_id, psid, encoded)

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def _load(self, page_id: str, psid: str) -> str | None:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT data FROM conversation_state WHERE page_id = ? AND psid = ?",
                    (page_id, psid),
                )
                .fetchone()
            )
        return str(row[0]) if row is not None else None

    def _save(self, page_id: str, psid: str, encoded: str | None) -> None:
        with self._lock:
            conn = self._connection()
            if encoded is None:
                conn.execute(
                    "DELETE FROM conversation_state WHERE page_id = ? AND psid = ?",
                    (page_id, psid),
                )
                return
            conn.execute(
                "INSERT INTO conversation_state (page_id, psid, data, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (page_id, psid) "
                "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (page_id, psid, encoded, time.time()),
            )
