"""Shard placement and the fair share of shards per replica (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.shards import fair_share, plan_claims, shard_of


def test_a_psid_always_lands_on_the_same_shard_in_range() -> None:
    assert shard_of("6543210987654321", 16) == shard_of("6543210987654321", 16)
    assert {shard_of(str(n), 16) for n in range(1_000)} == set(range(16))


@given(shards=st.integers(1, 64), live=st.integers(1, 10), owned=st.sets(st.integers(0, 63)))
def test_replicas_under_their_share_can_always_take_every_orphan(
    shards: int, live: int, owned: set[int]
) -> None:
    owned = {s for s in owned if s < shards}
    free = [s for s in range(shards) if s not in owned]
    # The other live - 1 replicas hold the owned shards between them; one replica is new.
    claimed = plan_claims(owned=set(), free=free, shards=shards, live=live)
    assert len(claimed) == min(len(free), fair_share(shards, live=live))
    assert fair_share(shards, live=live) * live >= shards


def test_a_replica_at_its_share_claims_nothing_more() -> None:
    assert plan_claims(owned={0, 1, 2, 3, 4, 5}, free=[6, 7], shards=16, live=3) == []
    assert plan_claims(owned={0}, free=[0, 9, 3], shards=16, live=8) == [3]
