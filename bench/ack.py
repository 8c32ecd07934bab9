"""Ack path: how many signed events/s each receiver acks, and the bot's p99 at half its top.

1. wrk (closed loop, 64 keep-alive connections) against the bare ASGI receiver (the
   ceiling), a minimal FastAPI route, and the bot with its durable SQLite inbox
   (``synchronous=FULL``) and its workers replying to the loopback stub, in ``--repeats``
   turns of all of them: each ratio is taken within a turn, and the table shows the median
   turn's (this VM's speed drifts by a third or more within a minute);
2. the open-loop generator at half the bot's top rate (its median) against a fresh bot, and
   against the bare receiver at the same rate, for the p99 ack.

Targets (bot issue): bot >= 0.5x the ceiling; p99 ack at half the top rate < 50 ms.

The fourth wrk row runs the bot with its handlers held (``bench.held_handlers``): the edge alone
on the core, the most an edge/worker process split could ack there.
"""

from __future__ import annotations

from dataclasses import dataclass
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


RECEIVERS = ("bare", "fastapi", "bot", "edge_alone")
ROW_NAMES = {
    "bare": "bare ASGI (ceiling)",
    "fastapi": "minimal FastAPI route",
    "bot": "bot, durable inbox",
    "edge_alone": "bot edge alone (handlers held)",
}


def _saturate(run: Run, target: Target, bodies_count: int) -> WrkResult:
    bodies = run.bodies(bodies_count, target.name)
    run.log(f"wrk {run.seconds:g}s against {target.name}")
    return run_wrk(f"{target.url}/webhook", bodies, duration_s=run.seconds)


def _saturate_fresh(run: Run, name: str, bodies_count: int) -> WrkResult:
    """One wrk run against a freshly started receiver (the bot with an empty inbox)."""
    if name in ("bare", "fastapi"):
        with start_reference(name, run.dir) as reference:
            return _saturate(run, reference, bodies_count)
    # The ack path itself: admission control off (here and in the open loop below), or the
    # closed loop would measure how fast the workers finish (the gate refuses once the
    # backlog passes its bound).
    env = NO_GATE if name == "bot" else EDGE_ALONE
    with start_stub(run.dir) as stub, start_bot(run.dir, stub.url, extra_env=env) as bot:
        return _saturate(run, bot, bodies_count)


@dataclass(frozen=True)
class Median:
    """One receiver over the turns: its median turn's wrk result and ratio to that turn's
    ceiling, and the lowest and highest ratio of any turn."""

    result: WrkResult
    ratio: float
    lowest: float
    highest: float


def median_turn(turns: list[dict[str, WrkResult]], name: str) -> Median:
    """``name`` in the turn whose ratio to the ceiling is the median (the upper one of two).

    >>> w = lambda n: WrkResult(n, 1.0, 0, 1.0, 1.0, 1.0, 1.0, 0)
    >>> turns = [{"bare": w(100), "bot": w(30)}, {"bare": w(200), "bot": w(40)},
    ...          {"bare": w(100), "bot": w(50)}]
    >>> m = median_turn(turns, "bot")
    >>> m.result.ok_per_s, m.ratio, m.lowest, m.highest
    (30.0, 0.3, 0.2, 0.5)
    >>> median_turn(turns, "bare").ratio  # every turn ties: the ceiling against itself
    1.0
    """
    ranked = sorted(
        ((ratio(turn[name].ok_per_s, turn["bare"].ok_per_s), turn[name]) for turn in turns),
        key=lambda pair: pair[0],
    )
    middle, result = ranked[len(ranked) // 2]
    return Median(result, middle, ranked[0][0], ranked[-1][0])


def _wrk_row(name: str, turns: list[dict[str, WrkResult]]) -> list[object]:
    m = median_turn(turns, name)
    return [
        ROW_NAMES[name],
        m.result.ok_per_s,
        m.ratio,
        f"{m.lowest:.2f}–{m.highest:.2f}",
        m.result.p50_ms,
        m.result.p99_ms,
        sum(turn[name].errors for turn in turns),
        "yes" if any(turn[name].wraps for turn in turns) else "no",
    ]


def run_ack(run: Run) -> dict[str, Any]:
    """Measure and print the ack table; returns the numbers (also kept in ``run.results``)."""
    print("\n## Ack path", flush=True)
    unique = int(20_000 * run.seconds)  # enough unique mids for ~20k events/s
    turns: list[dict[str, WrkResult]] = []
    for turn in range(run.repeats):
        run.log(f"turn {turn + 1} of {run.repeats}")
        turns.append({name: _saturate_fresh(run, name, unique) for name in RECEIVERS})
    bot, edge_alone = median_turn(turns, "bot"), median_turn(turns, "edge_alone")
    top = bot.result
    half = max(top.ok_per_s / 2, 50.0)
    open_count = int(half * run.seconds) + 1
    with start_stub(run.dir) as stub, start_bot(run.dir, stub.url, extra_env=NO_GATE) as fresh:
        run.log(f"open loop {half:.0f}/s for {run.seconds:g}s against a fresh bot")
        bot_open = open_loop(
            fresh.port, run.bodies(open_count, "bot-open"), rate=half, seconds=run.seconds
        )
    with start_reference("bare", run.dir) as bare:
        run.log(f"open loop {half:.0f}/s for {run.seconds:g}s against bare")
        bare_open = open_loop(
            bare.port, run.bodies(open_count, "bare-open"), rate=half, seconds=run.seconds
        )

    print(
        table(
            [
                f"receiver (wrk, 64 conns, median of {len(turns)} turns)",
                "acked ev/s",
                "x bare",
                "x bare, turns",
                "p50 ms",
                "p99 ms",
                "errors",
                "mids reused",
            ],
            [_wrk_row(name, turns) for name in RECEIVERS],
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
        "bot_vs_ceiling": bot.ratio,
        "bot_vs_ceiling_ok": bot.ratio >= RATIO_TARGET,
        "edge_alone_vs_ceiling": edge_alone.ratio,
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
    results = wrk_results(turns) | {
        "open_loop": {"bot": bot_open, "bare": bare_open},
        "verdict": verdict,
    }
    run.results["ack"] = results
    return results


def wrk_results(turns: list[dict[str, WrkResult]]) -> dict[str, Any]:
    """The wrk numbers as later phases read them: each receiver's median turn (what the
    table shows) under ``wrk``, and every turn under ``wrk_turns``."""
    return {
        "wrk": {name: _numbers(median_turn(turns, name).result) for name in turns[0]},
        "wrk_turns": [{name: _numbers(result) for name, result in turn.items()} for turn in turns],
    }


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
