"""Outbound options: Send API calls/s one core can push, per client and tuning.

Each variant (``bench.send_client``) runs pinned on core 0 against the bench's stub on
core 1 for ``--seconds / 2``; Node's fetch is the reference (the Express peer's client).
The bot's own ``HttpSendApi`` is measured as shipped, so a change in ``bot/send_api.py``
shows here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.procs import PY, RECEIVER_CPU, BenchError, pinned
from bench.runner import Run
from bench.stats import ratio, table
from bench.targets import reset_stub, start_stub, stub_stats

FETCH_BENCH = Path(__file__).parent / "peers" / "fetch-bench.mjs"

# (label, variant, in flight, pool size, extra args)
VARIANTS: tuple[tuple[str, str, int, int, list[str]], ...] = (
    ("httpx, pool 100, 50 in flight", "httpx", 50, 100, []),
    ("httpx, pool 10, 10 in flight", "httpx", 10, 10, []),
    ("httpx, pool 4, 4 in flight", "httpx", 4, 4, []),
    ("bot HttpSendApi (pool 100), 50 in flight", "bot", 50, 100, []),
    ("bot HttpSendApi (pool 10), 10 in flight", "bot", 10, 10, []),
    ("raw asyncio HTTP/1.1, 10 conns", "raw", 10, 10, []),
    ("httpx, Graph batch of 50, 2 in flight", "batch", 2, 2, ["--batch", "50"]),
)


def _run_variant(
    port: int, variant: str, in_flight: int, pool: int, extra: list[str], seconds: float
) -> dict[str, Any]:
    cmd = [PY, "-m", "bench.send_client", "--variant", variant, "--port", str(port)]
    cmd += ["--seconds", f"{seconds:g}", "--in-flight", str(in_flight), "--pool", str(pool), *extra]
    done = subprocess.run(
        pinned(cmd, RECEIVER_CPU), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"send client {variant} failed:\n{done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _run_node(port: int, in_flight: int, seconds: float) -> dict[str, Any] | None:
    node = shutil.which("node")
    if node is None:
        return None
    cmd = [node, str(FETCH_BENCH), str(port), f"{seconds:g}", str(in_flight)]
    done = subprocess.run(
        pinned(cmd, RECEIVER_CPU), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"node fetch bench failed:\n{done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_send(run: Run) -> dict[str, Any]:
    print("\n## Outbound options (Send API calls/s on one core)", flush=True)
    seconds = max(run.seconds / 2, 2.0)
    found: dict[str, dict[str, Any]] = {}
    with start_stub(run.dir, latency_ms=run.stub_latency_ms) as stub:
        run.log(f"node fetch, 50 in flight, {seconds:g}s")
        node = _run_node(stub.port, 50, seconds)
        if node is not None:
            found["node fetch, 50 in flight (reference)"] = node
        for label, variant, in_flight, pool, extra in VARIANTS:
            reset_stub(stub)
            run.log(f"{label}, {seconds:g}s")
            found[label] = _run_variant(stub.port, variant, in_flight, pool, extra, seconds)
            found[label]["stub_calls"] = stub_stats(stub)["calls"]
    reference = node["per_s"] if node else 0.0
    rows = [
        [label, r["per_s"], ratio(r["per_s"], reference) if reference else "-", r["cpu"]]
        for label, r in found.items()
    ]
    print(
        table(["client (core 0) -> stub (core 1)", "calls/s", "x node fetch", "client cpu"], rows)
    )
    run.results["send"] = found
    return found
