"""Fault runs: does every user message get exactly one reply through outages and crashes?

Each run starts ``mock-meta serve`` (echoes on) and ``messenger-bot serve`` (SQLite inbox)
on loopback (``loadtests.processes.LoopbackStack``), creates 100 users, and has them write
through the mock's control API, each message with a unique text that the bot echoes. When
the mock has settled every delivery and the bot's outbox has nothing left to send, the mock's
journal says how many times each message was answered: 0 (lost), 1, or 2+ (doubled).

* ``outage``: Send API 5xx for ``--outage-seconds`` while users write, then recovery;
* ``crashes``: 150 ms per Send API call at the mock, plus 5 kill -9 cycles of the bot;
* ``unencodable``: 10 messages among 300 whose reply cannot be encoded: exactly 10
  ``reply_undeliverable`` dead letters, the 290 others answered once;
* ``crashloop``: 10 kill -9 cycles under 100 messages/s.

kill -9 moments are drawn from a seeded ``random.Random`` (``--seed``; printed), so a run
can be replayed. Nothing is pinned: these runs count replies, not throughput.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.fault_stack import (
    FAULT_BOT_ENV,
    SETTLEMENTS,
    Kill,
    MockJournal,
    StackError,
    Traffic,
    kill_9_cycles,
    reply_states,
    settlements,
    wait_settled,
)
from bench.procs import PY, BenchError
from bench.reply_tally import (
    ReplyTally,
    accepted_replies,
    batched,
    reply_seconds,
    reply_texts,
    tally,
)
from bench.runner import Run
from bench.stats import percentile, table
from loadtests.processes import LoopbackStack, StartupError

USERS = 100
OUTAGE_RATE = 10.0  # messages/s while Graph is down
SLOW_MS = 150
SLOW_RATE = 25.0  # a batch of 50 calls takes 7.5 s at the mock: Graph answers ~25 replies/s
SLOW_CYCLES = 5
DOUBLED_TARGET = 0.01  # crashes on a slow Graph: at most 1 % of the messages answered twice
UNENCODABLE_TOTAL, UNENCODABLE_BAD = 300, 10
UNENCODABLE_RATE = 300.0
CRASHLOOP_RATE = 100.0
CRASHLOOP_CYCLES = 10
SETTLE_SECONDS = 180.0  # after the traffic: every delivery settled and the outbox empty
EMOJI = "\N{GRINNING FACE}"
RUNS = ("outage", "crashes", "unencodable", "crashloop")
HEADERS = [
    "run",
    "messages",
    "sent/s",
    "lost",
    "answered once",
    "doubled",
    "extra copies",
    "undelivered",
    "via batch",
    "reply p50 s",
    "reply p99 s",
    "drain s",
]
# Replies each kill -9 left in ``sending`` or ``uncertain``, and how the restarted bots
# settled such replies: by their echo, re-sent after the echo wait, or dropped.
KILL_HEADERS = ["left unknown, per kill", "settled echo / re-sent / dropped"]


@dataclass(frozen=True)
class Outcome:
    """One fault run's figures; ``undelivered``: messages the mock gave up delivering."""

    run: str
    tally: ReplyTally
    rate: float
    undelivered: int
    batched: int  # accepted replies that were items of a Graph batch request
    reply_seconds: list[float]  # per answered message: from the message to its first reply
    settled: bool
    seconds: float  # the whole run: start, traffic, settling
    drain_seconds: float  # from the last message sent to nothing left to send
    bot_replies: dict[str, int]  # the bot's replies by state (``fault_stack.reply_states``)
    journal_summary: dict[str, Any]  # the mock's own accounting, for a second opinion

    def row(self) -> list[object]:
        t = self.tally
        return [
            *(self.run, t.asked, self.rate, t.lost, t.once, t.doubled, t.copies),
            *(self.undelivered, self.batched),
            *(percentile(self.reply_seconds, 50), percentile(self.reply_seconds, 99)),
            self.drain_seconds,
        ]


def run_faults(run: Run) -> dict[str, Any]:
    """The fault runs chosen with ``--fault-runs`` (all four by default)."""
    unknown = set(run.fault_runs) - set(RUNS)
    if unknown:
        raise BenchError(f"unknown fault runs {sorted(unknown)}; choose from {', '.join(RUNS)}")
    return _run_all(run, run.fault_runs or RUNS)


def run_crashloop(run: Run) -> dict[str, Any]:
    return _run_all(run, ("crashloop",))


def _run_all(run: Run, names: tuple[str, ...]) -> dict[str, Any]:
    seed = run.seed if run.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"\n## Fault runs ({', '.join(names)}), seed {seed} (replay: --seed {seed})", flush=True)
    results: dict[str, Any] = run.results.setdefault("faults", {"seed": seed})
    with _unpinned():
        for name in names:
            rng = random.Random(f"{seed}-{name}")
            try:
                results[name] = _RUNNERS[name](run, rng)
            except (BenchError, StartupError) as exc:  # e.g. a bot that did not come back
                print(f"{name}: could not finish: {exc}: MISS", flush=True)
                results[name] = {"error": str(exc), "pass": False}
    return results


@contextmanager
def _unpinned() -> Iterator[None]:
    """The orchestrator runs on the load core; the stack it starts may use every core."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def _stack(run: Run, name: str, **bot_env: str) -> Iterator[tuple[LoopbackStack, MockJournal]]:
    workdir = run.dir / f"faults-{name}"
    with (
        LoopbackStack.start(workdir, bot_env={**FAULT_BOT_ENV, **bot_env}) as stack,
        MockJournal(stack.mock_url) as mock,
    ):
        mock.squeeze_retries()
        yield stack, mock


def _finish(
    name: str,
    stack: LoopbackStack,
    mock: MockJournal,
    traffic: Traffic,
    users: list[str],
    started: float,
    *,
    asked: list[str] | None = None,
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Wait until nothing more can arrive, then count the answers of ``asked`` (default:
    every message sent) from the journal."""
    settled = True
    traffic_ended = time.monotonic()
    try:
        wait_settled(stack, mock, sent=traffic.sent, timeout=SETTLE_SECONDS)
    except StackError as exc:
        settled = False
        print(f"  · {name}: {exc}; counting what arrived", flush=True)
    sends = mock.sends(users)
    summary = mock.summary()
    outcome = Outcome(
        run=name,
        tally=tally(traffic.texts if asked is None else asked, reply_texts(sends)),
        rate=traffic.achieved_rate,
        undelivered=int(summary["undelivered"]),
        batched=batched(sends),
        reply_seconds=reply_seconds(sends),
        settled=settled,
        seconds=time.monotonic() - started,
        drain_seconds=time.monotonic() - traffic_ended,
        bot_replies=reply_states(Path(stack.bot.env["INBOX_PATH"])),
        journal_summary=summary,
    )
    return outcome, sends


def _report(
    outcome: Outcome,
    headers: list[str],
    row: list[object],
    verdict: str,
    ok: bool,
    **figures: Any,
) -> dict[str, Any]:
    """Print the run's table and its PASS/MISS line; return its numbers for the report."""
    print(table(headers, [row]), flush=True)
    if not outcome.settled:
        verdict += " (the run did not settle in time)"
    print(f"{outcome.run}: {verdict}: {'PASS' if ok and outcome.settled else 'MISS'}", flush=True)
    numbers = asdict(outcome)
    seconds = numbers.pop("reply_seconds")
    numbers["reply_seconds"] = {f"p{q}": percentile(seconds, q) for q in (50, 90, 99, 100)}
    return {**numbers, **figures, "pass": ok and outcome.settled}


def _outage(run: Run, rng: random.Random) -> dict[str, Any]:
    print(f"\n### Send API outage: {run.outage_seconds:g} s of 5xx, then recovery", flush=True)
    started = time.monotonic()
    with _stack(run, "outage") as (stack, mock):
        users = mock.new_users(USERS)
        mock.arm_fault(code=2, http_status=500)  # Graph's "temporary" error, as a 500
        with Traffic(stack.mock_url, users, rate=OUTAGE_RATE) as traffic:
            time.sleep(run.outage_seconds)  # the outage's length: users write all along
        recovered = time.time()  # the mock's journal stamps records with wall time
        mock.clear_faults()
        outcome, sends = _finish("outage", stack, mock, traffic, users, started)
    last = max((r["at"] for r in accepted_replies(sends) if r["at"] >= recovered), default=None)
    to_last = None if last is None else last - recovered
    t = outcome.tally
    return _report(
        outcome,
        [*HEADERS, "recovery to last reply s"],
        [*outcome.row(), "-" if to_last is None else to_last],
        f"{t.once} delivered once, {t.lost} lost, {t.doubled} doubled "
        "(target: every reply delivered once)",
        t.lost == 0 and t.doubled == 0,
        recovery_to_last_reply_seconds=to_last,
    )


def _crashes(run: Run, rng: random.Random) -> dict[str, Any]:
    print(
        f"\n### Slow Graph + crashes: {SLOW_MS} ms per Send API call, "
        f"{SLOW_CYCLES} kill -9 cycles at {SLOW_RATE:g} messages/s",
        flush=True,
    )
    outcome, kills, settled = _under_kills(
        run, rng, "crashes", SLOW_RATE, SLOW_CYCLES, (50, 400), latency_ms=SLOW_MS
    )
    t = outcome.tally
    return _report(
        outcome,
        [*HEADERS, *KILL_HEADERS, "doubled %"],
        [*outcome.row(), *_kill_cells(kills, settled), 100 * t.doubled_share()],
        f"{t.lost} lost, {t.doubled} doubled = {t.doubled_share():.2%} "
        f"(target: 0 lost, at most {DOUBLED_TARGET:.0%} doubled)",
        t.lost == 0 and t.doubled_share() <= DOUBLED_TARGET,
        unknown_fate_per_kill=[kill.left_unknown for kill in kills],
        unknown_fate_settled=settled,
    )


def _crashloop(run: Run, rng: random.Random) -> dict[str, Any]:
    print(
        f"\n### Crash loop: {CRASHLOOP_CYCLES} kill -9 cycles at {CRASHLOOP_RATE:g} messages/s",
        flush=True,
    )
    outcome, kills, settled = _under_kills(
        run, rng, "crashloop", CRASHLOOP_RATE, CRASHLOOP_CYCLES, (50, 500)
    )
    t = outcome.tally
    return _report(
        outcome,
        [*HEADERS, *KILL_HEADERS],
        [*outcome.row(), *_kill_cells(kills, settled)],
        f"{t.lost} lost, {t.doubled} doubled (target: 0 lost, 0 doubled)",
        t.lost == 0 and t.doubled == 0,
        unknown_fate_per_kill=[kill.left_unknown for kill in kills],
        unknown_fate_settled=settled,
    )


def _under_kills(
    run: Run,
    rng: random.Random,
    name: str,
    rate: float,
    cycles: int,
    answers_between: tuple[int, int],
    *,
    latency_ms: int = 0,
) -> tuple[Outcome, list[Kill], dict[str, int]]:
    """Users write at ``rate`` while the bot is killed ``cycles`` times at random moments.

    Also returns how the bot settled the replies the kills left of unknown fate, summed over
    its incarnations (each scraped just before its kill, the last one at the end)."""
    started = time.monotonic()
    with _stack(run, name) as (stack, mock):
        users = mock.new_users(USERS)
        if latency_ms:
            mock.arm_fault(latency_ms=latency_ms)
        with Traffic(stack.mock_url, users, rate=rate) as traffic:
            kills = kill_9_cycles(
                stack, mock, cycles=cycles, rng=rng, answers_between=answers_between
            )
        outcome, _ = _finish(name, stack, mock, traffic, users, started)
        settled = Counter(settlements(stack))
    for kill in kills:
        settled.update(kill.settled_before)
    return outcome, kills, {k: settled[k] for k in SETTLEMENTS}


def _kill_cells(kills: list[Kill], settled: dict[str, int]) -> list[object]:
    left = [kill.left_unknown for kill in kills]
    return [
        " ".join(map(str, left)),  # not summed: one still unsettled at the next kill counts again
        f"{settled['echo']} / {settled['resent']} / {settled['dropped']}",
    ]


def _unencodable(run: Run, rng: random.Random) -> dict[str, Any]:
    print(
        f"\n### Unencodable replies: {UNENCODABLE_BAD} among {UNENCODABLE_TOTAL} messages",
        flush=True,
    )
    bad = set(rng.sample(range(UNENCODABLE_TOTAL), UNENCODABLE_BAD))

    def text(n: int) -> str:
        # bench.unencodable_handlers cuts the echo of a "cut" text inside its final emoji.
        return f"cut n{n} {EMOJI}" if n in bad else f"n{n}"

    started = time.monotonic()
    env = {"BOT_HANDLERS_MODULE": "bench.unencodable_handlers"}
    with _stack(run, "unencodable", **env) as (stack, mock):
        users = mock.new_users(USERS)
        with Traffic(
            stack.mock_url, users, rate=UNENCODABLE_RATE, total=UNENCODABLE_TOTAL, text=text
        ) as traffic:
            traffic.join(UNENCODABLE_TOTAL / UNENCODABLE_RATE + 60)
        good = [t for n, t in enumerate(traffic.texts) if n not in bad]
        outcome, _ = _finish("unencodable", stack, mock, traffic, users, started, asked=good)
        kinds = dead_letter_kinds(Path(stack.bot.env["INBOX_PATH"]))
    undeliverable = kinds.get("reply_undeliverable", 0)
    others = sum(kinds.values()) - undeliverable
    t = outcome.tally
    return _report(
        outcome,
        [*HEADERS, "reply_undeliverable", "other dead letters"],
        [*outcome.row(), undeliverable, others],
        f"{undeliverable} reply_undeliverable dead letters (target: exactly {UNENCODABLE_BAD}), "
        f"{t.once} of the {t.asked} others answered once",
        undeliverable == UNENCODABLE_BAD and others == 0 and t.once == t.asked,
        dead_letters=kinds,
    )


def dead_letter_kinds(inbox: Path) -> dict[str, int]:
    """Dead letters by kind, as ``messenger-bot dead-letters list --json`` shows them."""
    cli = [PY, "-m", "bot.cli", "dead-letters", "list", "--json", "--limit", "100000"]
    done = subprocess.run(
        [*cli, "--inbox", str(inbox)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    kinds: dict[str, int] = {}
    for letter in json.loads(done.stdout):
        kinds[letter["kind"]] = kinds.get(letter["kind"], 0) + 1
    return kinds


_RUNNERS: dict[str, Callable[[Run, random.Random], dict[str, Any]]] = {
    "outage": _outage,
    "crashes": _crashes,
    "unencodable": _unencodable,
    "crashloop": _crashloop,
}
