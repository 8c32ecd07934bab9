"""The inbox file's health on disk, as the HTTP edge needs it before it acks.

SQLite keeps writing through its open descriptor after the file is deleted (a cleanup job,
``rm -rf var/``) or replaced, so commits succeed into an orphaned inode whose events vanish at
the next restart. ``InboxFileGuard.intact()`` compares the path's identity (device, inode) with
the one seen at start: the edge checks it after each commit (``intact_after_commit``) and
answers 503 instead of acking, and ``/readyz`` fails, once the file is gone.
``probe_write()`` proves the filesystem still takes a new write (create, write a block, fsync,
delete), so a full or read-only disk fails readiness instead of only every webhook.

>>> guard = InboxFileGuard(Path("var/inbox.db"))  # after the inbox opened  # doctest: +SKIP

With a file in a temporary directory standing for the inbox:

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     inbox_file = Path(tmp, "inbox.db")
...     inbox_file.touch()
...     guard = InboxFileGuard(inbox_file)
...     before = guard.intact(), guard.lost_reason
...     inbox_file.unlink()  # a cleanup job removes it while the bot runs
...     after = guard.intact(), guard.lost_reason
>>> before, after
((True, None), (False, 'inbox file deleted'))
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("bot.inbox_guard")

_PROBE_BYTES = b"\0" * 4096  # one filesystem block: allocating it is what a full disk refuses


class InboxFileGuard:
    """Watches one inbox file (opened before this is built) for deletion or replacement."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._identity = _identity(os.stat(path))
        self.lost_reason: str | None = None
        self._checked_this_iteration = False

    def intact(self) -> bool:
        """False from the first time the file is found gone or replaced (logged once)."""
        if self.lost_reason is not None:
            return False
        try:
            identity = _identity(os.stat(self._path))
        except FileNotFoundError:
            return self._lost("inbox file deleted")
        except OSError:
            return True  # an unreadable directory is not proof of loss; the probe reports it
        if identity != self._identity:
            return self._lost("inbox file replaced")
        return True

    def intact_after_commit(self) -> bool:
        """``intact()``, looked up at most once per event-loop iteration.

        The acks one commit releases resume in the same iteration, after that commit: one
        ``stat`` serves them all and still comes after each one's commit. A commit that ends
        later resumes its acks in a later iteration, which checks again.
        """
        if self._checked_this_iteration:
            return self.lost_reason is None
        self._checked_this_iteration = True
        asyncio.get_running_loop().call_soon(self._next_iteration)
        return self.intact()

    def _next_iteration(self) -> None:
        self._checked_this_iteration = False

    def probe_write(self) -> None:
        """Create, write, fsync and delete a small file beside the inbox; raises ``OSError``."""
        fd, name = tempfile.mkstemp(prefix=".readyz-", dir=self._path.parent)
        try:
            if os.write(fd, _PROBE_BYTES) < len(_PROBE_BYTES):
                # A short write to a regular file means no room for the rest.
                raise OSError(errno.ENOSPC, "short write: no space left")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)

    def _lost(self, reason: str) -> bool:
        self.lost_reason = reason
        log.critical(
            "%s while the bot runs (%s): refusing events with 503 and failing /readyz until "
            "restart; events stored since then are in the orphaned file",
            reason,
            self._path,
            extra={"log_type": "lifecycle", "reason": reason.replace(" ", "_")},
        )
        return False


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino
