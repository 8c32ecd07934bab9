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

_AIOHTTP = ["--transport", "aiohttp"]
# (label, variant, in flight, pool size, extra args); "+ aiohttp" = httpx-aiohttp's transport
# under the same httpx API (SEND_API_TRANSPORT=aiohttp for the bot).
VARIANTS: tuple[tuple[str, str, int, int, list[str]], ...] = (
    ("httpx, pool 100, 50 in flight", "httpx", 50, 100, []),
    ("httpx + aiohttp, pool 100, 50 in flight", "httpx", 50, 100, _AIOHTTP),
    ("httpx, pool 10, 10 in flight", "httpx", 10, 10, []),
    ("httpx + aiohttp, pool 10, 10 in flight", "httpx", 10, 10, _AIOHTTP),
    ("httpx, pool 4, 4 in flight", "httpx", 4, 4, []),
    ("httpx + aiohttp, pool 4, 4 in flight", "httpx", 4, 4, _AIOHTTP),
    ("bot HttpSendApi (pool 100), 50 in flight", "bot", 50, 100, []),
    ("bot HttpSendApi + aiohttp (pool 100), 50 in flight", "bot", 50, 100, _AIOHTTP),
    ("bot HttpSendApi (pool 10), 10 in flight", "bot", 10, 10, []),
    ("bot HttpSendApi + aiohttp (pool 10), 10 in flight", "bot", 10, 10, _AIOHTTP),
    ("raw asyncio HTTP/1.1, 10 conns", "raw", 10, 10, []),
    ("httpx, Graph batch of 50, 2 in flight", "batch", 2, 2, ["--batch", "50"]),
    (
        "httpx + aiohttp, Graph batch of 50, 2 in flight",
        "batch",
        2,
        2,
        ["--batch", "50", *_AIOHTTP],
    ),
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
    for r in found.values():
        # Calls per second of client CPU: steadier than calls/s when other jobs share the core.
        r["per_cpu_s"] = r["per_s"] / r["cpu"] if r["cpu"] else 0.0
    rows = [
        [
            label,
            r["per_s"],
            ratio(r["per_s"], reference) if reference else "-",
            r["cpu"],
            r["per_cpu_s"],
        ]
        for label, r in found.items()
    ]
    head = ["client (core 0) -> stub (core 1)", "calls/s", "x node fetch", "client cpu"]
    print(table([*head, "calls/cpu-s"], rows))
    print(table(["aiohttp transport vs httpx's own", "x calls/s", "x calls/cpu-s"], _twins(found)))
    run.results["send"] = found
    return found


def _twins(found: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Each "+ aiohttp" variant over the same variant on httpx's own transport."""
    rows: list[list[Any]] = []
    for label, r in found.items():
        twin = found.get(label.replace(" + aiohttp", ""))
        if twin is None or twin is r:
            continue
        rows.append(
            [label, ratio(r["per_s"], twin["per_s"]), ratio(r["per_cpu_s"], twin["per_cpu_s"])]
        )
    return rows
