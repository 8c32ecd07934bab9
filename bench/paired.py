"""Settings side by side: the bot at one fixed rate, once per variant, the variants taking turns.

``python -m bench paired --variant OUTBOX_CONCURRENCY=64 --variant OUTBOX_CONCURRENCY=256``
runs the bot (as ``bench e2e`` starts it, on core 0) at ``--rate`` events/s for ``--seconds``,
once per variant, ``--repeats`` times over. The variants take turns, so a machine that drifts
(the 2-core VMs this runs on do, by tens of percent within minutes) drifts for all of them,
and a change is judged by how often it wins a turn rather than by one pair of numbers.

One run's rate is the mean of its per-second reply counts at the stub, the first second left
out (the generator ramps up); a turn's winner is the variant with the highest run rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.e2e import _warm_up
from bench.runner import Run, finish_open_loop, open_loop_async
from bench.stats import table
from bench.targets import start_bot, start_stub, stub_stats

SAMPLE_SECONDS = 1.0


@dataclass(frozen=True)
class PairedRun:
    """One variant's run: replies per second, second by second, and the acks' p99."""

    variant: str
    per_second: tuple[float, ...]
    ack_p99_ms: float
    refused: int

    @property
    def rate(self) -> float:
        """Mean replies/s, the first (ramp-up) second left out."""
        steady = self.per_second[1:] or self.per_second
        return sum(steady) / len(steady) if steady else 0.0


def parse_variant(text: str) -> dict[str, str]:
    """``"A=1,B=2"`` as environment settings; an empty string is the defaults.

    >>> parse_variant("OUTBOX_CONCURRENCY=256,WORKER_MIN_CONCURRENCY=8")
    {'OUTBOX_CONCURRENCY': '256', 'WORKER_MIN_CONCURRENCY': '8'}
    >>> parse_variant("")
    {}
    >>> parse_variant("OUTBOX_CONCURRENCY")
    Traceback (most recent call last):
    ValueError: a variant is NAME=VALUE[,NAME=VALUE...], got 'OUTBOX_CONCURRENCY'
    """
    env: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"a variant is NAME=VALUE[,NAME=VALUE...], got {text!r}")
        env[name.strip()] = value.strip()
    return env


def summarise(turns: Sequence[Sequence[PairedRun]]) -> list[dict[str, Any]]:
    """Per variant: runs, mean of the run rates, lowest and highest run, turns won.

    >>> a = [PairedRun("a", (50.0, 100.0, 100.0), 20.0, 0), PairedRun("b", (60.0, 90.0), 25.0, 0)]
    >>> b = [PairedRun("a", (50.0, 80.0), 22.0, 0), PairedRun("b", (60.0, 120.0), 21.0, 3)]
    >>> [(row["variant"], row["mean"], row["won"], row["refused"]) for row in summarise([a, b])]
    [('a', 90.0, 1, 0), ('b', 105.0, 1, 3)]
    """
    names = [run.variant for run in turns[0]] if turns else []
    rows = []
    for index, name in enumerate(names):
        runs = [turn[index] for turn in turns]
        rates = [run.rate for run in runs]
        won = sum(1 for turn in turns if max(turn, key=lambda r: r.rate) is turn[index])
        rows.append(
            {
                "variant": name,
                "runs": len(runs),
                "mean": sum(rates) / len(rates),
                "lowest": min(rates),
                "highest": max(rates),
                "won": won,
                "ack_p99_ms": max(run.ack_p99_ms for run in runs),
                "refused": sum(run.refused for run in runs),
            }
        )
    return rows


def _measure(run: Run, name: str, env: dict[str, str], rate: float) -> PairedRun:
    with start_stub(run.dir) as stub, start_bot(run.dir, stub.url, extra_env=env) as bot:
        _warm_up(run, bot, stub)
        bodies = run.bodies(int(rate * run.seconds) + 1, "paired")
        generator = open_loop_async(bot.port, bodies, rate=rate, seconds=run.seconds)
        seen, then = stub_stats(stub)["unique"], time.monotonic()
        per_second: list[float] = []
        while generator.poll() is None:
            time.sleep(SAMPLE_SECONDS)
            count, now = stub_stats(stub)["unique"], time.monotonic()
            if generator.poll() is None:  # a whole second under load
                per_second.append((count - seen) / (now - then))
            seen, then = count, now
        report = finish_open_loop(generator, timeout=60)
    return PairedRun(name, tuple(per_second), report["p99_ms"], report["non_2xx"])


def run_paired(run: Run) -> dict[str, Any]:
    """Measure and print the paired table; returns the numbers (also in ``run.results``)."""
    variants = run.variants or ("", "")
    envs = [(text or "defaults", parse_variant(text)) for text in variants]
    print(f"\n## Paired settings at {run.paired_rate:g} events/s", flush=True)
    turns: list[list[PairedRun]] = []
    for turn in range(run.repeats):
        runs = []
        for name, env in envs:
            run.log(f"turn {turn + 1}/{run.repeats}: {name}")
            runs.append(_measure(run, name, env, run.paired_rate))
        turns.append(runs)
    rows = summarise(turns)
    print(
        table(
            [
                "variant",
                "runs",
                "mean replies/s",
                "lowest",
                "highest",
                "turns won",
                "worst p99 ack ms",
                "refused",
            ],
            [
                [
                    r["variant"],
                    r["runs"],
                    r["mean"],
                    r["lowest"],
                    r["highest"],
                    r["won"],
                    r["ack_p99_ms"],
                    r["refused"],
                ]
                for r in rows
            ],
        ),
        flush=True,
    )
    results = {
        "rate": run.paired_rate,
        "seconds": run.seconds,
        "variants": rows,
        "runs": [[vars(r) | {"rate": r.rate} for r in turn] for turn in turns],
    }
    run.results["paired"] = results
    return results
