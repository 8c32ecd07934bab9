"""Proof against a real Prometheus for the Redis shard alerts (the rest: test_prometheus_proof).

Three replicas on one Redis behind HAProxy (``ReplicaStack``, fault handlers on demand) and
the mock; a real Prometheus scrapes every replica every second and evaluates the same test
copy of our rules as the SQLite proof. Then:

* a stuck owner: an event received 700 s ago is stored straight into Redis and its handler
  holds it, while its user keeps writing; the shard's backlog is old and growing, so
  ``BotShardLagGrowing`` fires, and resolves once the handler is released and it drains;
* a replica holding shards is killed with -9; with a 20 s lease its shards stay unowned
  until the lease expires, so ``BotShardWithoutOwner`` fires, and resolves after the takeover.

The alerts proven are exactly the rules on the shard metrics (``reads_shard_metrics``).
A table of time to fire and to resolve is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bot.inbox_redis import RedisInbox
from tests.conftest import require_binary
from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.system.alert_proof import (
    AlertProof,
    active_alerts,
    alert_keys,
    load_rules,
    proof_table,
    prove,
    reads_shard_metrics,
    short_rule_copies,
)
from tests.system.prometheus_server import PrometheusClient, running_prometheus
from tests.system.replica_stack import ReplicaStack
from tests.system.stack_faults import MockUsers, old_held_event, store_directly

pytestmark = [pytest.mark.system, pytest.mark.timeout(170)]

SHARDS = 8
REPLICAS = 3
LEASE_SECONDS = 20  # long enough for the alert's 2 s ``for:`` to see the shards unowned


def _value(prometheus: PrometheusClient, promql: str) -> float | None:
    """The single value ``promql`` gives now, None when it gives no series."""
    result = prometheus.query(promql)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_the_shard_alerts_fire_under_a_stuck_owner_and_a_killed_replica_and_resolve(
    start_redis: Callable[[], RedisServer], prometheus_binary: str, tmp_path: Path
) -> None:
    haproxy = require_binary("haproxy")
    server = start_redis()
    release_file = tmp_path / "release"
    bot_env = {
        "BOT_HANDLERS_MODULE": "tests.system.fault_handlers",
        "FAULT_RELEASE_FILE": str(release_file),
        "REDIS_SHARDS": str(SHARDS),
        "REDIS_LEASE_SECONDS": str(LEASE_SECONDS),
        "SHUTDOWN_GRACE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    proofs: list[AlertProof] = []
    with (
        ReplicaStack.start(
            tmp_path / "run", server.url, haproxy_binary=haproxy, replicas=REPLICAS, bot_env=bot_env
        ) as stack,
        running_prometheus(
            prometheus_binary,
            workdir,
            targets={
                "messenger-bot": [urlsplit(bot.ready_url).netloc for bot in stack.bots],
                "mock-meta": stack.mock_url.removeprefix("http://"),
            },
            rule_files=short_rule_copies(workdir),
        ) as prometheus,
        httpx.Client(base_url=stack.mock_url, trust_env=False, timeout=15.0) as mock,
    ):
        users = MockUsers(mock, release_file)
        try:
            wait_until(
                lambda: (
                    _value(prometheus, 'sum(up{job="messenger-bot"})') == REPLICAS
                    and _value(prometheus, "sum(bot_shard_owned)") == SHARDS
                ),
                timeout=45,
                what="every replica scraped and every shard owned",
            )
            wait_until(lambda: not active_alerts(prometheus), timeout=60, what="no alert at rest")

            stuck_user = users.new_user()
            inbox = RedisInbox(server.url, shards=SHARDS)
            held = old_held_event(stuck_user, "m_shard_hold", age_seconds=700)

            keep_writing = users.repeat(lambda: users.text(stuck_user, "still there?"), 0.3)

            def hold_and_keep_writing() -> None:
                store_directly(inbox, [held])
                keep_writing()

            def release() -> None:
                users.stop_repeating()
                users.release_held_events()

            proofs += prove(
                prometheus,
                "owner stuck on an event 700 s old, user writes on",
                ["BotShardLagGrowing/warning"],
                hold_and_keep_writing,
                release,
                timeout=60,
            )
            wait_until(lambda: not active_alerts(prometheus), timeout=60, what="no alert at rest")

            owned = [stack.metric(n, "bot_shards_owned") or 0.0 for n in range(REPLICAS)]
            victim = owned.index(max(owned))
            assert owned[victim] > 0, owned
            proofs += prove(
                prometheus,
                f"replica kill -9 ({LEASE_SECONDS} s lease, then takeover)",
                ["BotShardWithoutOwner/critical"],
                lambda: stack.kill(victim),
                lambda: None,  # the survivors take the shards over once the leases expire
                timeout=60,
            )
            assert sum(stack.shards_owned()) == SHARDS
        finally:
            users.stop_repeating()
            print("\n" + proof_table(proofs))

    shard_rules = [rule for rule in load_rules() if reads_shard_metrics(rule)]
    assert alert_keys(shard_rules), "the rules still have shard alerts to prove"
    assert {row.alert for row in proofs} == alert_keys(shard_rules), "every shard rule is proven"
