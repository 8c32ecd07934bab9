"""Pure: which shard a conversation belongs to, and how many shards a replica should own.

Events of one sender and replies of one conversation map to the same shard (a stable hash of
the PSID), and each shard has exactly one owner at a time (``bot.leases``), so per-sender order
holds across replicas while different senders spread over all of them.

>>> shard_of("6543210987654321", 16)
6
>>> fair_share(16, live=3)
6
>>> plan_claims(owned={0, 1}, free=[5, 2, 9], shards=16, live=3)
[2, 5, 9]
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Iterable


def shard_of(key: str, shards: int) -> int:
    """The shard of a PSID (or of any key): CRC-32, stable across processes and versions."""
    return zlib.crc32(key.encode()) % shards


def fair_share(shards: int, *, live: int) -> int:
    """How many shards one of ``live`` replicas may hold: together they always cover all."""
    return math.ceil(shards / max(1, live))


def plan_claims(
    *, owned: Collection[int], free: Iterable[int], shards: int, live: int
) -> list[int]:
    """Free shards to claim now: up to the fair share, lowest first; never more than exist.

    A replica over its share keeps what it has (shards move only on a crash or a clean
    shutdown), so the replicas under their share can always take the orphans between them.
    """
    room = fair_share(shards, live=live) - len(owned)
    if room <= 0:
        return []
    return sorted(s for s in set(free) if s not in owned and 0 <= s < shards)[:room]
