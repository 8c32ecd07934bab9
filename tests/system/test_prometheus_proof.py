"""Proof against a real Prometheus: every panel query returns data, alerts fire and resolve.

A real bot and a real mock run on loopback under continuous conversation traffic while a
real Prometheus scrapes both every second and evaluates a test copy of our rules (``for:``
and range windows shortened). Then:

* every panel query of both dashboards (macros and variables substituted as Grafana would)
  runs without error or warning and returns data, except panels documented as empty-is-normal;
* every metric the dashboards and rules read is exported by the bot or the mock;
* an armed Send API fault makes ``BotSendApiErrors`` fire, and clearing it resolves the alert.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dashboards import queries
from loadtests.processes import LoopbackStack
from tests.polling import wait_until
from tests.system.prometheus_server import PrometheusClient, running_prometheus, shortened_rules

pytestmark = pytest.mark.system

RULES_DIR = Path(queries.DASHBOARD_DIR) / "rules"
SCRAPE_SECONDS = 1.0
# Actions that the default handlers answer, and a few that they do not.
REPLYING_ACTIONS = (
    {"type": "text", "text": "hello"},
    {"type": "attachment"},
    {"type": "postback", "payload": "GET_STARTED"},
    {"type": "quick_reply", "text": "Green", "payload": "PICK_GREEN"},
)
SILENT_ACTIONS = ({"type": "reaction"}, {"type": "read"})


class Conversations:
    """Background users talking to the bot through the mock until stopped (bounded)."""

    def __init__(self, mock_url: str, users: int = 4, max_turns: int = 5000) -> None:
        self._mock_url = mock_url
        self._users = users
        self._max_turns = max_turns
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.replies = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for _ in range(self._users):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        with httpx.Client(base_url=self._mock_url, timeout=15.0, trust_env=False) as http:
            psid = http.post("/_mock/users", json={}).json()["psid"]
            for turn in range(self._max_turns):
                if self._stop.is_set():
                    return
                action = REPLYING_ACTIONS[turn % len(REPLYING_ACTIONS)]
                sent = http.post(f"/_mock/users/{psid}/actions", json=action).json()
                reply = http.get(
                    "/_mock/wait/reply", params={"psid": psid, "mid": sent["mid"], "timeout": 3}
                )
                if reply.status_code == 200:
                    with self._lock:
                        self.replies += 1
                silent = SILENT_ACTIONS[turn % len(SILENT_ACTIONS)]
                http.post(f"/_mock/users/{psid}/actions", json=silent)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LoopbackStack]:
    with LoopbackStack.start(tmp_path / "stack") as running:
        yield running


@pytest.fixture
def prometheus(
    prometheus_binary: str, stack: LoopbackStack, tmp_path: Path
) -> Iterator[PrometheusClient]:
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    rule_copies = []
    for source in sorted(RULES_DIR.glob("*.rules.yml")):
        copy = workdir / source.name
        copy.write_text(shortened_rules(source, for_duration="2s", window="10s"))
        rule_copies.append(copy)
    targets = {
        "messenger-bot": stack.bot_url.removeprefix("http://"),
        "mock-meta": stack.mock_url.removeprefix("http://"),
    }
    with running_prometheus(
        prometheus_binary, workdir, targets=targets, rule_files=rule_copies
    ) as client:
        yield client


def _alert_states(prom: PrometheusClient, name: str) -> set[str]:
    return {a["state"] for a in prom.alerts() if a["labels"].get("alertname") == name}


def _exported_names(url: str) -> set[str]:
    text = httpx.get(f"{url}/metrics", timeout=10.0, trust_env=False).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_dashboards_and_alerts_hold_against_real_prometheus(
    stack: LoopbackStack, prometheus: PrometheusClient
) -> None:
    assert httpx.post(f"{stack.mock_url}/_mock/handshake", json={}, trust_env=False).json()["ok"]
    # One unsigned POST so the signature-failure series carry real data too.
    assert httpx.post(f"{stack.bot_url}/webhook", content=b"{}", trust_env=False).status_code == 401

    traffic = Conversations(stack.mock_url)
    traffic.start()
    try:
        wait_until(
            lambda: all(prometheus.targets_up().values()) and len(prometheus.targets_up()) == 2,
            timeout=30,
            what="both targets up",
        )
        wait_until(lambda: traffic.replies >= 20, timeout=60, what="20 replies")

        # An armed fault: every Send API call fails with Graph's transient code 2.
        with httpx.Client(base_url=stack.mock_url, trust_env=False, timeout=10.0) as mock:
            armed = mock.post(
                "/_mock/faults", json={"code": 2, "http_status": 500, "probability": 1.0}
            )
            assert armed.status_code == 201, armed.text
            wait_until(
                lambda: "firing" in _alert_states(prometheus, "BotSendApiErrors"),
                timeout=90,
                what="BotSendApiErrors firing",
            )
            assert mock.delete("/_mock/faults").status_code == 200
        replies_before = traffic.replies
        wait_until(
            lambda: (
                not _alert_states(prometheus, "BotSendApiErrors")
                and traffic.replies > replies_before + 10
            ),
            timeout=90,
            what="BotSendApiErrors resolved after the fault was cleared",
        )

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
            promql = queries.substitute(
                query.expr, ctx_by_job[query.dashboard_uid], query.variables
            )
            answer = prometheus.query(promql)
            where = f"{query.dashboard_uid} / {query.panel_title!r}: {promql}"
            if answer.get("status") != "success":
                failures.append(f"error {answer.get('error')!r} in {where}")
            elif answer.get("warnings"):
                failures.append(f"warnings {answer['warnings']} in {where}")
            elif not answer["data"]["result"] and not query.may_be_empty:
                failures.append(f"no data in {where}")
        assert not failures, "\n".join(failures)
    finally:
        traffic.stop()

    exported = _exported_names(stack.bot_url) | _exported_names(stack.mock_url)
    rules = [
        rule
        for path in RULES_DIR.glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    referenced: set[str] = set()
    for expr in [q.expr for q in panel_queries] + [rule["expr"] for rule in rules]:
        referenced |= queries.metric_names(expr)
    missing = sorted(referenced - exported - recorded - {"up"})
    assert not missing, f"dashboards/rules read metrics nobody exports: {missing}"
