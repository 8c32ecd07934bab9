"""Ack path: how many signed events/s each receiver acks, and the bot's p99 at half its top.

1. wrk (closed loop, 64 keep-alive connections) against the bare ASGI receiver (the
   ceiling), a minimal FastAPI route, and the bot with its durable SQLite inbox
   (``synchronous=FULL``) and its workers replying to the loopback stub;
2. the open-loop generator at half the bot's top rate against a fresh bot, and against
   the bare receiver at the same rate, for the p99 ack.

Targets (bot issue): bot >= 0.5x the ceiling; p99 ack at half the top rate < 50 ms.

A third wrk row runs the bot with its handlers held (``bench.held_handlers``): the edge alone
on the core, the most an edge/worker process split could ack there.
"""

from __future__ import annotations

from typing import Any

from bench.runner import Run, open_loop
from bench.stats import ratio, table
from bench.targets import Target, start_bot, start_reference, start_stub
from bench.wrk import WrkResult, run_wrk

P99_TARGET_MS = 50.0
RATIO_TARGET = 0.5
NO_GATE = {"WEBHOOK_BACKLOG_LIMIT_SECONDS": "0"}
EDGE_ALONE = {
    **NO_GATE,
    "BOT_HANDLERS_MODULE": "bench.held_handlers",
    "WORKER_CONCURRENCY": "1",
    "WORKER_MIN_CONCURRENCY": "1",
}


def _wrk_row(name: str, result: WrkResult, ceiling: float) -> list[object]:
    return [
        name,
        result.ok_per_s,
        ratio(result.ok_per_s, ceiling),
        result.p50_ms,
        result.p99_ms,
        result.errors,
        "yes" if result.wraps else "no",
    ]


def _saturate(run: Run, target: Target, bodies_count: int) -> WrkResult:
    bodies = run.bodies(bodies_count, target.name)
    run.log(f"wrk {run.seconds:g}s against {target.name}")
    return run_wrk(f"{target.url}/webhook", bodies, duration_s=run.seconds)


def run_ack(run: Run) -> dict[str, Any]:
    """Measure and print the ack table; returns the numbers (also kept in ``run.results``)."""
    print("\n## Ack path", flush=True)
    unique = int(20_000 * run.seconds)  # enough unique mids for ~20k events/s
    with start_reference("bare", run.dir) as bare:
        ceiling = _saturate(run, bare, unique)
    with start_reference("fastapi", run.dir) as fast:
        fastapi = _saturate(run, fast, unique)
    # The ack path itself: admission control off (here and in the open loop below), or the
    # closed loop would measure how fast the workers finish (the gate refuses once the
    # backlog passes its bound).
    with start_stub(run.dir) as stub, start_bot(run.dir, stub.url, extra_env=NO_GATE) as bot:
        top = _saturate(run, bot, unique)
    with start_stub(run.dir) as stub, start_bot(run.dir, stub.url, extra_env=EDGE_ALONE) as bot:
        edge_alone = _saturate(run, bot, unique)
    half = max(top.ok_per_s / 2, 50.0)
    open_count = int(half * run.seconds) + 1
    with start_stub(run.dir) as stub, start_bot(run.dir, stub.url, extra_env=NO_GATE) as bot:
        run.log(f"open loop {half:.0f}/s for {run.seconds:g}s against a fresh bot")
        bot_open = open_loop(
            bot.port, run.bodies(open_count, "bot-open"), rate=half, seconds=run.seconds
        )
    with start_reference("bare", run.dir) as bare:
        run.log(f"open loop {half:.0f}/s for {run.seconds:g}s against bare")
        bare_open = open_loop(
            bare.port, run.bodies(open_count, "bare-open"), rate=half, seconds=run.seconds
        )

    c = ceiling.ok_per_s
    print(
        table(
            [
                "receiver (wrk, 64 conns)",
                "acked ev/s",
                "x bare",
                "p50 ms",
                "p99 ms",
                "errors",
                "mids reused",
            ],
            [
                _wrk_row("bare ASGI (ceiling)", ceiling, c),
                _wrk_row("minimal FastAPI route", fastapi, c),
                _wrk_row("bot, durable inbox", top, c),
                _wrk_row("bot edge alone (handlers held)", edge_alone, c),
            ],
        )
    )
    print()
    print(
        table(
            [
                "open loop @ half bot top",
                "rate/s",
                "ok/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "non-2xx+err",
                "gen lag p99 ms",
                "gen cpu",
            ],
            [
                _open_row("bot, durable inbox", bot_open),
                _open_row("bare ASGI", bare_open),
            ],
        )
    )
    verdict = {
        "bot_vs_ceiling": ratio(top.ok_per_s, c),
        "bot_vs_ceiling_ok": ratio(top.ok_per_s, c) >= RATIO_TARGET,
        "edge_alone_vs_ceiling": ratio(edge_alone.ok_per_s, c),
        "bot_p99_at_half_ms": bot_open["p99_ms"],
        "bot_p99_at_half_ok": bot_open["p99_ms"] < P99_TARGET_MS and bot_open["unanswered"] == 0,
    }
    print(
        f"\nbot/ceiling = {verdict['bot_vs_ceiling']:.2f} (target >= {RATIO_TARGET}): "
        f"{'PASS' if verdict['bot_vs_ceiling_ok'] else 'MISS'};  "
        f"p99 ack at {half:.0f}/s = {bot_open['p99_ms']:.1f} ms (target < {P99_TARGET_MS:g}): "
        f"{'PASS' if verdict['bot_p99_at_half_ok'] else 'MISS'};  "
        f"edge alone/ceiling = {verdict['edge_alone_vs_ceiling']:.2f}",
        flush=True,
    )
    results = {
        "wrk": {
            "bare": _numbers(ceiling),
            "fastapi": _numbers(fastapi),
            "bot": _numbers(top),
            "edge_alone": _numbers(edge_alone),
        },
        "open_loop": {"bot": bot_open, "bare": bare_open},
        "verdict": verdict,
    }
    run.results["ack"] = results
    return results


def _numbers(result: WrkResult) -> dict[str, Any]:
    return {**vars(result), "ok_per_s": result.ok_per_s}


def _open_row(name: str, report: dict[str, Any]) -> list[object]:
    return [
        name,
        report["target_rate"],
        report["ok_per_s"],
        report["p50_ms"],
        report["p99_ms"],
        report["max_ms"],
        report["non_2xx"] + report["errors"] + report["unanswered"],
        report["dispatch_lag_p99_ms"],
        report["cpu_util"],
    ]
