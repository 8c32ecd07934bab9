"""End to end: the highest event rate at which every reply reaches the Send API stub.

For the bot and for the Express peer (ack, then one ``fetch`` per event), each on core 0
with the stub and the open-loop generator on core 1, every step on a fresh receiver
(empty inbox) after a one-second warm-up:

1. an overload probe (``--probe-rate``, default 4000/s, for ``Run.probe_seconds``) shows the
   reply rate each manages when swamped, its p99 ack (of the 2xx answers, and of all: the bot
   refuses the excess with fast 503s), how many POSTs were refused, and how long the acked
   backlog takes to drain afterwards;
2. sustain steps at fixed rates, starting at 0.9x that reply rate (at least ``START_RATE``),
   growing 1.6x after a pass and bisecting after a miss, the two receivers taking turns. A
   step passes when every POST was acked, the backlog (events sent minus distinct replies at
   the stub) is under half a second of traffic when the load stops, every reply arrives
   within ``DRAIN_SECONDS`` after, and none twice. The best passing rate is the result.

Targets (bot issue): bot sustained >= 2x Express's, with the bot's p99 ack < 50 ms; in the
overload probe the bot replies at >= 0.8x its own sustained rate, its 2xx p99 ack stays under
1 s, and every acked event gets its reply (none lost, the backlog drains).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.runner import Run, finish_open_loop, open_loop, open_loop_async
from bench.stats import ratio, table
from bench.targets import Target, reset_stub, start_bot, start_express, start_stub, stub_stats

DRAIN_SECONDS = 5.0  # after the load: every reply must be in by then
# Stop waiting for replies once none arrived for this long: longer than the bot's default
# REPLY_ECHO_WAIT_SECONDS (10), after which a reply of unknown fate is sent again.
DRAIN_STALL_SECONDS = 12.0
DRAIN_MAX_SECONDS = 60.0  # and in any case this long after the load (an overload backlog)
PROBE_DRAIN_SECONDS = 5.0  # the generator stops waiting for acks after this
WARM_EVENTS = 100
MIN_RATE = 25.0
START_RATE = 100.0
GROW, SHRINK, TIGHT = 1.6, 0.6, 1.15
BACKLOG_SECONDS = 0.5  # a passing step ends with less than this much traffic unanswered
RATIO_TARGET = 2.0
P99_TARGET_MS = 50.0
OVERLOAD_RATIO_TARGET = 0.8  # probe replies/s over the bot's sustained rate
OVERLOAD_P99_TARGET_MS = 1000.0  # p99 of the probe's 2xx acks


@dataclass(frozen=True)
class Flow:
    """Replies against events over one load step (pure numbers from the samples)."""

    reply_rate: float  # distinct replies/s reaching the stub while the load ran
    backlog_end: float  # events sent minus replies when the load stopped
    backlog_max: float


def analyse(
    samples: Sequence[tuple[float, int]], *, t0: float, rate: float, seconds: float
) -> Flow:
    """Reply rate and backlog from ``(monotonic time, distinct replies)`` samples.

    The reply rate is the slope after the first second (warm-up), up to the end of load.

    >>> s = [(t / 4, int(max(0, t / 4 - 0.1) * 100)) for t in range(0, 41)]
    >>> f = analyse(s, t0=0.0, rate=100, seconds=10)
    >>> round(f.reply_rate), round(f.backlog_end)
    (100, 10)
    """
    total = rate * seconds
    window = [(t, u) for t, u in samples if t0 + 1.0 <= t <= t0 + seconds]
    if len(window) >= 2 and window[-1][0] > window[0][0]:
        reply_rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    else:
        reply_rate = 0.0
    backlogs = [(t, min(max((t - t0) * rate, 0.0), total) - u) for t, u in samples if t >= t0]
    during = [b for t, b in backlogs if t <= t0 + seconds]
    end = min(backlogs, key=lambda tb: abs(tb[0] - (t0 + seconds)), default=(0.0, 0.0))[1]
    return Flow(reply_rate=reply_rate, backlog_end=end, backlog_max=max(during, default=0.0))


@dataclass(frozen=True)
class Step:
    target: str
    rate: float
    seconds: float
    acked: int
    sent: int
    replies: int
    duplicates: int
    reply_rate: float
    backlog_end: float
    backlog_max: float
    drain_s: float | None  # seconds after the load stopped until every acked event had a reply
    ack_p50_ms: float  # over all answers (2xx and refusals)
    ack_p99_ms: float
    gen_cpu: float
    ok_p99_ms: float = 0.0  # over the 2xx answers only
    refused: int = 0  # answered, but not 2xx (the bot's 503 when its backlog is too deep)
    unanswered: int = 0  # POSTs with no answer at all (timed out or reset)
    gen_lag_p99_ms: float = 0.0  # how late the generator sent (high: the load core was busy)

    @property
    def lost(self) -> int:
        """Acked events without a reply when the wait for the drain ended."""
        return max(0, self.acked - self.replies)

    @property
    def passed(self) -> bool:
        return (
            self.acked == self.sent
            and self.duplicates == 0
            and self.drain_s is not None
            and self.drain_s <= DRAIN_SECONDS
            and self.backlog_end <= max(self.rate * BACKLOG_SECONDS, 50)
        )


def _step(run: Run, target: Target, stub: Target, rate: float, seconds: float) -> Step:
    reset_stub(stub)
    bodies: Path = run.bodies(int(rate * seconds) + 1, f"{target.name}-e2e")
    proc = open_loop_async(
        target.port, bodies, rate=rate, seconds=seconds, drain_timeout=PROBE_DRAIN_SECONDS
    )
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        samples.append((time.monotonic(), stub_stats(stub)["unique"]))
        time.sleep(0.2)
    report = finish_open_loop(proc, timeout=60)
    t0 = float(report["t0_monotonic"])
    end = t0 + seconds
    stats = _await_drain(stub, report["ok"], end, samples)
    drain = max(time.monotonic() - end, 0.0) if stats["unique"] >= report["ok"] else None
    flow = analyse(samples, t0=t0, rate=rate, seconds=seconds)
    return Step(
        target=target.name,
        rate=rate,
        seconds=seconds,
        acked=report["ok"],
        sent=report["sent"],
        replies=stats["unique"],
        duplicates=stats["duplicates"],
        reply_rate=flow.reply_rate,
        backlog_end=flow.backlog_end,
        backlog_max=flow.backlog_max,
        drain_s=drain,
        ack_p50_ms=report["p50_ms"],
        ack_p99_ms=report["p99_ms"],
        gen_cpu=report["cpu_util"],
        ok_p99_ms=report["ok_p99_ms"],
        refused=report["non_2xx"],
        unanswered=report["unanswered"] + report["errors"],
        gen_lag_p99_ms=report["dispatch_lag_p99_ms"],
    )


def _await_drain(
    stub: Target, acked: int, end: float, samples: list[tuple[float, int]]
) -> dict[str, int]:
    """Wait until every acked event has its reply at the stub, while replies keep coming
    (an overload probe leaves seconds of backlog); returns the stub's last stats."""
    stats = stub_stats(stub)
    last_progress, seen = time.monotonic(), stats["unique"]
    deadline = max(time.monotonic(), end) + DRAIN_MAX_SECONDS
    while stats["unique"] < acked and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = stub_stats(stub)
        now = time.monotonic()
        samples.append((now, stats["unique"]))
        if stats["unique"] > seen:
            last_progress, seen = now, stats["unique"]
        elif now - max(last_progress, end) > DRAIN_STALL_SECONDS:
            break
    return stats


def _warm_up(run: Run, target: Target, stub: Target) -> None:
    """JIT, pools and caches warm before measuring: a second of light traffic, drained."""
    bodies = run.bodies(WARM_EVENTS, f"{target.name}-warm")
    open_loop(target.port, bodies, rate=WARM_EVENTS, seconds=1.0, drain_timeout=5.0)
    deadline = time.monotonic() + DRAIN_SECONDS
    while stub_stats(stub)["unique"] < WARM_EVENTS and time.monotonic() < deadline:
        time.sleep(0.1)


def _fresh_step(run: Run, name: str, rate: float, seconds: float) -> Step:
    """Each step gets a fresh receiver (empty inbox) and a fresh stub."""
    with start_stub(run.dir, latency_ms=run.stub_latency_ms) as stub:
        if name == "bot":
            target = start_bot(run.dir, stub.url)
        else:
            target = start_express(run.dir, stub.url)
        with target:
            _warm_up(run, target, stub)
            run.log(f"{name}: {rate:.0f} events/s for {seconds:g}s")
            return _step(run, target, stub, rate, seconds)


def next_rate(rate: float, passed: list[float], missed: list[float]) -> float | None:
    """The next rate to try, or None when the bracket is tight enough.

    >>> next_rate(100, [100], []), next_rate(160, [100], [160]), next_rate(100, [], [100])
    (160.0, 130.0, 60.0)
    >>> next_rate(110, [100], [110]) is None
    True
    """
    if not missed:
        return rate * GROW
    if not passed:
        return rate * SHRINK
    low, high = max(passed), min(missed)
    if high <= low * TIGHT:
        return None
    return (low + high) / 2


@dataclass
class _Search:
    """One receiver's sustain search: the rate to try next and the steps so far."""

    rate: float | None
    steps: list[Step]

    def record(self, step: Step) -> None:
        self.steps.append(step)
        passed = [s.rate for s in self.steps if s.passed]
        missed = [s.rate for s in self.steps if not s.passed]
        self.rate = next_rate(step.rate, passed, missed)

    @property
    def best(self) -> Step | None:
        return max((s for s in self.steps if s.passed), key=lambda s: s.rate, default=None)


def measure(
    run: Run,
    names: Sequence[str],
    fresh_step: Callable[[Run, str, float, float], Step] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each receiver's overload probe, then their sustain searches, one step of each in turn
    (``fresh_step`` runs one step: another phase may bring its own receivers, e.g.
    ``bench.replicas``).

    Taking turns matters for the ratio: this VM's speed drifts by a third or more within a
    minute, and two searches run one after the other compared different machines.
    """
    step = fresh_step or _fresh_step
    probes = {name: step(run, name, run.probe_rate, run.probe_seconds) for name in names}
    searches = {
        name: _Search(max(0.9 * probe.reply_rate, START_RATE), []) for name, probe in probes.items()
    }

    def searching(search: _Search) -> bool:
        return search.rate is not None and len(search.steps) < run.search_steps

    while any(searching(search) for search in searches.values()):
        for name, search in searches.items():
            if searching(search):
                assert search.rate is not None
                search.record(step(run, name, search.rate, run.seconds))
    return {
        name: {"probe": probes[name], "steps": search.steps, "best": search.best}
        for name, search in searches.items()
    }


def run_e2e(run: Run) -> dict[str, Any]:
    print("\n## End to end", flush=True)
    found = measure(run, ("express", "bot"))
    rows: list[list[object]] = []
    for name, res in found.items():
        for label, step in [("overload probe", res["probe"])] + [
            ("sustain", s) for s in res["steps"]
        ]:
            rows.append(
                [
                    name,
                    label,
                    step.rate,
                    step.reply_rate,
                    step.ok_p99_ms,
                    step.ack_p99_ms,
                    step.backlog_end,
                    "-" if step.drain_s is None else step.drain_s,
                    step.duplicates,
                    step.refused,
                    step.unanswered,
                    step.lost,
                    "PASS" if step.passed else "miss",
                ]
            )
    print(
        table(
            [
                "receiver",
                "step",
                "events/s in",
                "replies/s out",
                "p99 2xx ms",
                "p99 all ms",
                "backlog at end",
                "drain s",
                "dup replies",
                "refused",
                "unanswered",
                "acked, no reply",
                "sustained",
            ],
            rows,
        )
    )
    bot_best: Step | None = found["bot"]["best"]
    express_best: Step | None = found["express"]["best"]
    bot_rate = bot_best.rate if bot_best else 0.0
    express_rate = express_best.rate if express_best else 0.0
    verdict = {
        "bot_sustained": bot_rate,
        "express_sustained": express_rate,
        "bot_vs_express": ratio(bot_rate, express_rate),
        "bot_vs_express_ok": ratio(bot_rate, express_rate) >= RATIO_TARGET,
        "bot_p99_at_sustained_ms": bot_best.ack_p99_ms if bot_best else None,
        "bot_p99_ok": bool(bot_best and bot_best.ack_p99_ms < P99_TARGET_MS),
        "express_p99_overload_ms": found["express"]["probe"].ack_p99_ms,
        **overload_verdict(found["bot"]["probe"], bot_rate),
    }
    print(
        f"\nsustained: bot {bot_rate:.0f}/s, express {express_rate:.0f}/s, "
        f"bot/express = {verdict['bot_vs_express']:.2f} (target >= {RATIO_TARGET:g}): "
        f"{'PASS' if verdict['bot_vs_express_ok'] else 'MISS'};  bot p99 ack there = "
        f"{verdict['bot_p99_at_sustained_ms'] or 0:.1f} ms (target < {P99_TARGET_MS:g}): "
        f"{'PASS' if verdict['bot_p99_ok'] else 'MISS'}",
        flush=True,
    )
    print(overload_line(verdict), flush=True)
    results = {
        name: {
            "probe": asdict(res["probe"]),
            "steps": [asdict(s) for s in res["steps"]],
        }
        for name, res in found.items()
    }
    results["verdict"] = verdict
    run.results["e2e"] = results
    return results


def overload_verdict(probe: Step, sustained: float) -> dict[str, Any]:
    """The overload targets, from the bot's probe and its best sustained rate.

    >>> p = Step("bot", 4000, 20, 9000, 80000, 9000, 0, 520, 900, 1100, 1.5, 2, 9, 0.3,
    ...          ok_p99_ms=180, refused=71000)
    >>> v = overload_verdict(p, 600)
    >>> round(v["overload_ratio"], 2), v["overload_ok"], v["overload_lost"]
    (0.87, True, 0)
    """
    overload_ratio = ratio(probe.reply_rate, sustained)
    return {
        "overload_ratio": overload_ratio,
        "overload_p99_2xx_ms": probe.ok_p99_ms,
        "overload_p99_all_ms": probe.ack_p99_ms,
        "overload_refused": probe.refused,
        "overload_unanswered": probe.unanswered,
        "overload_lost": probe.lost,
        "overload_duplicates": probe.duplicates,
        "overload_drain_s": probe.drain_s,
        "overload_ok": (
            overload_ratio >= OVERLOAD_RATIO_TARGET
            and probe.ok_p99_ms < OVERLOAD_P99_TARGET_MS
            and probe.lost == 0
            and probe.duplicates == 0
            and probe.drain_s is not None
        ),
    }


def overload_line(verdict: dict[str, Any]) -> str:
    """One line: the bot's overload probe against its targets."""
    drain = verdict["overload_drain_s"]
    return (
        f"overload: bot probe replies/s / sustained = {verdict['overload_ratio']:.2f} "
        f"(target >= {OVERLOAD_RATIO_TARGET:g}); p99 ack 2xx {verdict['overload_p99_2xx_ms']:.0f}"
        f" ms (target < {OVERLOAD_P99_TARGET_MS:g}), all {verdict['overload_p99_all_ms']:.0f} ms;"
        f" refused {verdict['overload_refused']}, unanswered {verdict['overload_unanswered']},"
        f" acked without reply {verdict['overload_lost']} (target 0), duplicates "
        f"{verdict['overload_duplicates']}, drained "
        f"{'never' if drain is None else f'{drain:.1f} s'} after the load: "
        f"{'PASS' if verdict['overload_ok'] else 'MISS'}"
    )
