"""Three replicas on one Redis behind HAProxy, one killed with -9 under steady traffic.

The mock delivers to HAProxy's one front port, as Meta would. The killed replica's shards
are taken over by the survivors once its leases expire; every user message is answered
exactly once (the mock's journal), and each user's replies come in the order they wrote.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.fault_stack import Traffic  # the crash runs' paced users
from tests.conftest import require_binary
from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.system.replica_stack import ReplicaStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(150)]

USERS = 20
SENDERS = 6
RATE = 100.0  # messages/s offered, shared by the senders
SHARDS = 16
BOT_ENV = {
    "LOG_LEVEL": "WARNING",
    "REDIS_SHARDS": str(SHARDS),
    "SHUTDOWN_GRACE_SECONDS": "2",
}
TAKEOVER_BUDGET_SECONDS = 10.0  # the default lease (5 s) + claim interval (1 s), with slack


def test_a_replica_killed_under_traffic_loses_and_doubles_nothing(
    start_redis: Callable[[], RedisServer], tmp_path: Path
) -> None:
    haproxy = require_binary("haproxy")
    server = start_redis()
    with ReplicaStack.start(
        tmp_path / "run", server.url, haproxy_binary=haproxy, bot_env=BOT_ENV
    ) as stack:
        split = wait_until(
            lambda: (owned := stack.shards_owned()) and sum(owned) == SHARDS and owned,
            timeout=30,
            what="the shards split between the replicas",
        )
        assert len(split) == 3 and min(split) > 0, split
        with httpx.Client(base_url=stack.mock_url, timeout=10) as mock:
            profile = {"retry_delays": [0.2, 0.5, 1.0], "repeat_delay": 1.0}
            mock.put("/_mock/settings", json={"retry_profile": profile}).raise_for_status()
            users = [mock.post("/_mock/users", json={}).json()["psid"] for _ in range(USERS)]

            def answered() -> int:
                return int(mock.get("/_mock/journal/summary").json()["answered"])

            # Paced senders in parallel (the failover run: about 100 messages/s),
            # each with its own users so each user's messages stay in order.
            traffic = [
                Traffic(stack.mock_url, users[n::SENDERS], rate=RATE / SENDERS)
                for n in range(SENDERS)
            ]
            for sender in traffic:
                sender.start()
            started = time.monotonic()
            try:
                wait_until(lambda: answered() >= 300, timeout=60, what="answers before the kill")
                victim = split.index(max(split))
                stack.kill(victim)
                killed_at = time.monotonic()
                wait_until(
                    lambda: sum(stack.shards_owned()) == SHARDS,
                    timeout=30,
                    interval=0.1,
                    what="every shard owned again",
                )
                takeover = time.monotonic() - killed_at
                after = answered()
                wait_until(lambda: answered() >= after + 300, timeout=60, what="answers after")
            finally:
                for sender in traffic:
                    sender.stopped.set()
                for sender in traffic:
                    sender.stop()
            sent = sum(sender.sent for sender in traffic)
            offered = sent / (time.monotonic() - started)

            final = wait_until(
                lambda: _settled(mock, sent), timeout=60, what="every message answered"
            )
            out_of_order = [u for u in users if not _in_order(_reply_numbers(mock, u))]

    print(
        f"\nfailover at {offered:.0f} messages/s offered: shards served again {takeover:.1f} s"
        f" after kill -9; {final}"
    )
    assert final["answered"] == sent > 600  # 0 lost
    assert final["extra_replies"] == 0  # 0 doubled
    assert out_of_order == []
    assert takeover <= TAKEOVER_BUDGET_SECONDS


def _settled(mock: httpx.Client, sent: int) -> dict[str, Any] | None:
    """The journal summary once every message sent was delivered and answered, else None.

    A message still being delivered is not owed a reply yet: without ``in_flight == 0`` a
    delivery the mock was still retrying (the stopped replica's) passed for settled.
    """
    summary: dict[str, Any] = mock.get("/_mock/journal/summary").json()
    done = summary["actions"] == sent and summary["in_flight"] == 0
    return summary if done and summary["unanswered"] == 0 else None


def _reply_numbers(mock: httpx.Client, psid: str) -> list[int]:
    """The ``n`` of each "You said: n<n>" reply to ``psid``, in the order the mock got them."""
    items = mock.get("/_mock/journal/sends", params={"psid": psid}).json()["items"]
    texts = [str(s["request"].get("message", {}).get("text", "")) for s in items]
    return [int(m.group(1)) for t in texts if (m := re.search(r"n(\d+)$", t))]


def _in_order(numbers: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(numbers))


def test_a_replica_stopped_cleanly_hands_its_shards_over_before_its_lease_would_expire(
    start_redis: Callable[[], RedisServer], tmp_path: Path
) -> None:
    haproxy = require_binary("haproxy")
    server = start_redis()
    with ReplicaStack.start(
        tmp_path / "run", server.url, haproxy_binary=haproxy, replicas=2, bot_env=BOT_ENV
    ) as stack:
        wait_until(
            lambda: (owned := stack.shards_owned()) and sum(owned) == SHARDS and min(owned) > 0,
            timeout=30,
            what="the shards split between the replicas",
        )
        with httpx.Client(base_url=stack.mock_url, timeout=10) as mock:
            users = [mock.post("/_mock/users", json={}).json()["psid"] for _ in range(USERS)]
            traffic = Traffic(stack.mock_url, users, rate=RATE / 2)
            traffic.start()
            try:
                wait_until(lambda: traffic.sent >= 50, timeout=60, what="traffic")
                stopped_at = time.monotonic()
                stack.bots[0].close()  # SIGTERM: drain, then release the leases
                exited_after = time.monotonic() - stopped_at  # 10 s: it was killed
                wait_until(
                    lambda: stack.shards_owned() == [SHARDS],
                    timeout=30,
                    interval=0.1,
                    what="the survivor owns every shard",
                )
                handover = time.monotonic() - stopped_at
            finally:
                traffic.stop()

            final = wait_until(
                lambda: _settled(mock, traffic.sent), timeout=60, what="every message answered"
            )

    print(f"\nclean stop: shards handed over {handover:.1f} s after SIGTERM; {final}")
    assert final["answered"] == traffic.sent and final["extra_replies"] == 0
    # The default lease: released, not waited out.
    assert handover < 5.0, (
        f"the stopped replica exited {exited_after:.1f} s after SIGTERM (killed at 10 s)"
    )
