"""Proof against a real Prometheus: every alert fires under its real fault and resolves.

A real bot (with fault handlers on demand) and a real mock run on loopback under continuous
conversation traffic while a real Prometheus scrapes both every second and evaluates a test
copy of our rules (``for:`` 2 s, range windows 10 s; thresholds as in production). Then:

* each fault is injected in turn (signature flood, Send API outage, a handler blocking the
  event loop, a failing handler, the bot down, an old event stuck in the inbox, the inbox
  locked, a subscription disabled); every alert it should raise must fire, and resolve once
  the fault is cleared, and every rule of both files must be among them, except the Redis
  shard alerts (``test_prometheus_proof_shards`` proves those). A table of time to fire and
  to resolve is printed (run with ``-s`` to see it);
* every panel query of both dashboards (macros and variables substituted as Grafana would)
  runs without error or warning and returns data, except panels documented as empty-is-normal;
* every metric the dashboards and rules read is exported by the bot or the mock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboards import queries, render
from loadtests.processes import LoopbackStack
from tests.polling import wait_until
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
from tests.system.stack_faults import Conversations, Faults

pytestmark = pytest.mark.system

SCRAPE_SECONDS = 1.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LoopbackStack]:
    workdir = tmp_path / "stack"
    bot_env = {
        "BOT_HANDLERS_MODULE": "tests.system.fault_handlers",
        "FAULT_RELEASE_FILE": str(workdir / "release"),
        "HANDLER_MAX_ATTEMPTS": "2",
        "HANDLER_BACKOFF_BASE_SECONDS": "0.05",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    with LoopbackStack.start(workdir, bot_env=bot_env) as running:
        yield running


@pytest.fixture
def prometheus(
    prometheus_binary: str, stack: LoopbackStack, tmp_path: Path
) -> Iterator[PrometheusClient]:
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    rule_copies = short_rule_copies(workdir)
    targets = {
        "messenger-bot": stack.bot_url.removeprefix("http://"),
        "mock-meta": stack.mock_url.removeprefix("http://"),
    }
    with running_prometheus(
        prometheus_binary, workdir, targets=targets, rule_files=rule_copies
    ) as client:
        yield client


def _exported_names(url: str) -> set[str]:
    text = httpx.get(f"{url}/metrics", timeout=10.0, trust_env=False).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _check_dashboards(prometheus: PrometheusClient) -> list[str]:
    ctx_by_job = {
        uid: queries.GrafanaContext(
            scrape_interval=SCRAPE_SECONDS, range_seconds=300, variables={"job": job}
        )
        for uid, job in queries.DASHBOARD_JOBS.items()
    }
    failures = []
    panel_queries = queries.dashboard_queries(queries.load_dashboards())
    assert len(panel_queries) > 40
    for query in panel_queries:
        promql = queries.substitute(query.expr, ctx_by_job[query.dashboard_uid], query.variables)
        answer = prometheus.query(promql)
        where = f"{query.dashboard_uid} / {query.panel_title!r}: {promql}"
        if answer.get("status") != "success":
            failures.append(f"error {answer.get('error')!r} in {where}")
        elif answer.get("warnings"):
            failures.append(f"warnings {answer['warnings']} in {where}")
        elif not answer["data"]["result"] and not query.may_be_empty:
            failures.append(f"no data in {where}")
    return failures


@pytest.mark.timeout(600)
def test_every_alert_fires_under_its_fault_and_resolves_and_every_panel_has_data(
    stack: LoopbackStack, prometheus: PrometheusClient, tmp_path: Path
) -> None:
    started = time.monotonic()
    assert httpx.post(f"{stack.mock_url}/_mock/handshake", json={}, trust_env=False).json()["ok"]
    traffic = Conversations(stack.mock_url)
    traffic.start()
    proofs: list[AlertProof] = []
    mock = httpx.Client(base_url=stack.mock_url, trust_env=False, timeout=15.0)
    faults = Faults(stack, mock)
    try:
        wait_until(
            lambda: all(prometheus.targets_up().values()) and len(prometheus.targets_up()) == 2,
            timeout=30,
            what="both targets up",
        )
        wait_until(lambda: traffic.replies >= 20, timeout=60, what="20 replies")
        wait_until(lambda: not active_alerts(prometheus), timeout=60, what="no alert at rest")

        proofs += prove(
            prometheus,
            "signature flood (unsigned POSTs)",
            ["BotWebhookSignatureFailures/warning", "BotWebhookSignatureFailures/critical"],
            faults.repeat(faults.unsigned_posts, 0.02),
            faults.stop_repeating,
        )
        proofs += prove(
            prometheus,
            "Send API outage (every call 500, code 2)",
            [
                "BotSendApiErrors/warning",
                "BotSendApiErrors/critical",
                "BotSendApiRetryStorm/warning",
                "BotReplyErrorBudgetBurn/critical/1h",
                "BotReplyErrorBudgetBurn/critical/6h",
                "BotReplyErrorBudgetBurn/warning/3d",
            ],
            faults.arm_send_outage,
            faults.clear_send_faults,
        )
        failures = _check_dashboards(prometheus)
        assert not failures, "\n".join(failures)

        stall_user = faults.new_user()
        proofs += prove(
            prometheus,
            "handler blocks the loop (time.sleep 1.5 s)",
            ["BotEventLoopLagHigh/warning"],
            faults.repeat(lambda: faults.text_and_wait(stall_user, "stall 1.5"), 0.1),
            faults.stop_repeating,
        )
        fail_user = faults.new_user()
        proofs += prove(
            prometheus,
            "failing handler (raises every attempt)",
            ["BotDeadLetters/warning"],
            faults.repeat(lambda: faults.text(fail_user, "fail"), 0.5),
            faults.stop_repeating,
        )
        proofs += prove(
            prometheus,
            "bot process stopped",
            ["BotDown/critical", "MetaWebhookDeliveryFailing/warning"],
            faults.stop_bot_with_an_old_event_left_pending,
            faults.start_bot,
        )
        proofs += prove(
            prometheus,
            "event pending 700 s (held by its handler)",
            ["BotInboxBacklogStale/warning", "BotInboxBacklogStale/critical"],
            lambda: None,  # left by the previous fault: the bot picked it up on start
            faults.release_held_events,
        )
        proofs += prove(
            prometheus,
            "inbox write-locked by another process",
            [
                "BotWebhookErrors/critical",
                "BotWebhookAckLatencyHigh/warning",
                "BotWebhookAckLatencyHigh/critical",
            ],
            faults.lock_inbox,
            faults.unlock_inbox,
        )
        proofs += prove(
            prometheus,
            "deliveries failing for 1 h (bot down, clock +1 h)",
            ["MetaWebhooksDisabled/critical"],
            faults.fail_deliveries_for_an_hour,
            faults.resubscribe,
        )
        # Pictures of both dashboards from this run (RENDER_DASHBOARDS_DIR keeps them).
        out = Path(os.environ.get("RENDER_DASHBOARDS_DIR") or tmp_path / "pictures")
        pictures = render.render_all(
            render.prometheus_fetch(prometheus.base_url),
            end=time.time(),
            range_seconds=time.monotonic() - started,
            scrape_interval=SCRAPE_SECONDS,
            out=out,
        )
        assert all(p.stat().st_size > 50_000 for p in pictures), pictures
    finally:
        faults.stop_repeating()
        traffic.stop()
        mock.close()
        faults.bot.close()
        print("\n" + proof_table(proofs))

    rules = load_rules()
    # The shard alerts need replicas on Redis: test_prometheus_proof_shards proves those.
    sqlite_rules = [rule for rule in rules if not reads_shard_metrics(rule)]
    assert {row.alert for row in proofs} == alert_keys(sqlite_rules), "every alert rule is proven"

    exported = _exported_names(stack.bot_url) | _exported_names(stack.mock_url)
    recorded = {rule["record"] for rule in rules if "record" in rule}
    panel_queries = queries.dashboard_queries(queries.load_dashboards())
    referenced: set[str] = set()
    for expr in [q.expr for q in panel_queries] + [rule["expr"] for rule in rules]:
        referenced |= queries.metric_names(expr)
    missing = sorted(referenced - exported - recorded - {"up"})
    assert not missing, f"dashboards/rules read metrics nobody exports: {missing}"
