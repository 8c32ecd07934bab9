"""Replicas: end-to-end replies/s through HAProxy with 1 and 2 Redis-backed replicas,
against the SQLite single process, in one run (``python -m bench replicas``).

Each configuration gets the end-to-end phase's search (``bench.e2e.measure``: an overload
probe, then sustain steps, every step on fresh processes after a warm-up):

* ``sqlite``: one ``messenger-bot serve`` on core 0 with its SQLite inbox (the reference);
* ``redis-1`` / ``redis-2``: ``INBOX_BACKEND=redis`` replicas behind HAProxy; replica ``i``
  runs on core ``i`` (so the second shares core 1 with the generator, the stub, HAProxy and
  Redis: this machine has two cores). Redis's own CPU over each step is reported.

Needs ``redis-server`` and ``haproxy`` on PATH.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from bench.e2e import Step, _step, _warm_up, measure
from bench.procs import LOAD_CPU, BenchError, Service, cpu_count, free_port, http_get
from bench.runner import Run
from bench.stats import ratio, table
from bench.targets import Target, start_bot, start_stub
from loadtests.haproxy import haproxy_config

CONFIGS = ("sqlite", "redis-1", "redis-2")
SHARDS = 16
SPLIT_TIMEOUT_SECONDS = 20.0


def cpu_seconds(stat: str) -> float:
    """User + system CPU seconds from the text of ``/proc/<pid>/stat`` (fields 14 and 15,
    counted after the parenthesised name, which may contain spaces)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    return cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise BenchError(f"{name} is not installed: the replicas phase cannot run")
    return path


@contextlib.contextmanager
def _redis(log_dir: Path) -> Iterator[tuple[Service, str]]:
    port = free_port()
    data = log_dir / f"redis-{port}"
    data.mkdir()
    cmd = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data)]
    url = f"redis://127.0.0.1:{port}/0"
    with Service.start("redis", cmd, cpu=LOAD_CPU, log_dir=log_dir) as service:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        with contextlib.closing(client):
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"redis-server did not start:\n{service.log_tail()}")
                time.sleep(0.05)
        yield service, url


def _shards_owned(port: int) -> float:
    try:
        _, body = http_get(port, "/metrics")
    except OSError:
        return 0.0
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("bot_shards_owned "):
            return float(line.split()[1])
    return 0.0


@contextlib.contextmanager
def _replicas(run: Run, name: str, graph_base: str, redis_url: str) -> Iterator[Target]:
    """``count`` replicas behind HAProxy; yields the front once the shards are split."""
    count = int(name.split("-")[1])
    env = {"INBOX_BACKEND": "redis", "REDIS_URL": redis_url, "REDIS_SHARDS": str(SHARDS)}
    with contextlib.ExitStack() as stack:
        bots = [
            stack.enter_context(
                start_bot(
                    run.dir, graph_base, name=f"{name}-{n}", extra_env=env, cpu=n % cpu_count()
                )
            )
            for n in range(count)
        ]
        deadline = time.monotonic() + SPLIT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:  # one replica first takes all, then rebalances
            owned = [_shards_owned(bot.port) for bot in bots]
            if sum(owned) == SHARDS and min(owned) > 0:
                break
            time.sleep(0.1)
        else:
            raise BenchError(f"{name}: the replicas did not split the shards")
        front = free_port()
        config = run.dir / f"haproxy-{front}.cfg"
        config.write_text(haproxy_config(front, [bot.port for bot in bots]))
        cmd = [_binary("haproxy"), "-f", str(config), "-db"]
        haproxy = stack.enter_context(Service.start("haproxy", cmd, cpu=LOAD_CPU, log_dir=run.dir))
        haproxy.wait_ready(front, "/readyz")
        yield Target(name, front, haproxy)


class _Phase:
    """Runs the steps and remembers Redis's CPU share during each."""

    def __init__(self) -> None:
        self.redis_cpu: dict[tuple[str, float], float] = {}

    def step(self, run: Run, name: str, rate: float, seconds: float) -> Step:
        with start_stub(run.dir, latency_ms=run.stub_latency_ms) as stub:
            if name == "sqlite":
                with start_bot(run.dir, stub.url, name="sqlite") as target:
                    _warm_up(run, target, stub)
                    run.log(f"{name}: {rate:.0f} events/s for {seconds:g}s")
                    return _step(run, target, stub, rate, seconds)
            with _redis(run.dir) as (redis, url), _replicas(run, name, stub.url, url) as front:
                _warm_up(run, front, stub)
                run.log(f"{name}: {rate:.0f} events/s for {seconds:g}s")
                before, started = _process_cpu(redis.pid), time.monotonic()
                result = _step(run, front, stub, rate, seconds)
                share = (_process_cpu(redis.pid) - before) / (time.monotonic() - started)
                self.redis_cpu[(name, rate)] = share
                return result


def run_replicas(run: Run) -> dict[str, Any]:
    print("\n## Replicas (Redis + HAProxy) against the SQLite process", flush=True)
    phase = _Phase()
    found = measure(run, CONFIGS, phase.step)
    rows: list[list[object]] = []
    for name, res in found.items():
        labelled = [("overload probe", res["probe"]), *(("sustain", s) for s in res["steps"])]
        for label, step in labelled:
            cpu = phase.redis_cpu.get((name, step.rate))
            cpu_text = "-" if cpu is None else f"{cpu:.0%}"
            outcome = "PASS" if step.passed else "miss"
            numbers = [step.rate, step.reply_rate, step.ack_p99_ms, step.duplicates]
            rows.append([name, label, *numbers, cpu_text, outcome])
    headers = ["receiver", "step", "events/s in", "replies/s out", "p99 ack ms", "dup replies"]
    print(table([*headers, "redis CPU", "sustained"], rows))
    best = {
        name: (res["best"].rate if res["best"] is not None else 0.0) for name, res in found.items()
    }
    verdict = {
        "sustained": best,
        "redis_1_vs_sqlite": ratio(best["redis-1"], best["sqlite"]),
        "redis_2_vs_redis_1": ratio(best["redis-2"], best["redis-1"]),
    }
    print(
        f"\nsustained: sqlite {best['sqlite']:.0f}/s, 1 replica {best['redis-1']:.0f}/s, "
        f"2 replicas {best['redis-2']:.0f}/s; 1 replica / sqlite = "
        f"{verdict['redis_1_vs_sqlite']:.2f}, 2 / 1 replicas = {verdict['redis_2_vs_redis_1']:.2f}",
        flush=True,
    )
    results: dict[str, Any] = {
        name: {"probe": asdict(res["probe"]), "steps": [asdict(s) for s in res["steps"]]}
        for name, res in found.items()
    }
    results["redis_cpu"] = {f"{n}@{r:.0f}": c for (n, r), c in phase.redis_cpu.items()}
    results["verdict"] = verdict
    run.results["replicas"] = results
    return results
