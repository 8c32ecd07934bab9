"""The mock's capacity on one core: signed deliveries/s and Send API calls/s.

``mock-meta serve`` runs alone on core 0; wrk, and the bare receiver standing in for the bot
(it checks every signature and counts what it accepted), run on core 1.

1. deliveries: wrk POSTs user actions (``/_mock/users/{psid}/actions``, a text each) for
   200 users; the rate is what the sink accepted while the load ran (each delivery signed
   and answered);
2. Send API: wrk POSTs ``/{page}/messages`` to those users (windows open);
   the mock also emits echoes and delivery receipts for each send, as by default;
3. reference: the bench's bare Send API stub on the same core with the same request.

The ratios that matter: the mock against what the bot sustains (from the other phases of
the same run, when they ran) — the mock must never be the bottleneck of a load test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.events import PAGE_ID, PAGE_TOKEN
from bench.procs import LOAD_CPU, RECEIVER_CPU, BenchError, http_post
from bench.runner import Run
from bench.stats import ratio, table
from bench.targets import Target, sink_count, start_mock, start_reference, start_stub
from bench.wrk import run_wrk_post

USERS = 200  # deliveries of one user go out one at a time, as Meta's do: spread the load
_SEND_PATH = f"/v25.0/{PAGE_ID}/messages?access_token={PAGE_TOKEN}"


def _create_users(mock: Target, count: int) -> list[str]:
    """Users with an open 24-hour window, created through the control API."""
    psids = []
    for _ in range(count):
        status, body = http_post(
            mock.port, "/_mock/users", json.dumps({"open_window": True}).encode()
        )
        if status != 201:
            raise BenchError(f"mock refused to create a user: {status} {body[:200]!r}")
        psids.append(json.loads(body)["psid"])
    return psids


def _requests_file(run: Run, name: str, lines: list[tuple[str, dict[str, Any]]]) -> Path:
    path = run.dir / f"requests-{name}.txt"
    path.write_text("".join(f"{p}\t{json.dumps(body)}\n" for p, body in lines))
    return path


def _settle(count: Callable[[], int], timeout: float = 5.0) -> int:
    """Wait until ``count()`` stops moving (in-flight deliveries land); return it."""
    last = count()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = count()
        if now == last:
            return now
        last = now
    return last


def _wait_for(count: Callable[[], int], target: int, timeout: float = 30.0) -> tuple[int, float]:
    """Poll ``count()`` until it reaches ``target`` or stalls; ``(count, when it got there)``."""
    deadline = time.monotonic() + timeout
    last, last_change = count(), time.monotonic()
    while last < target and time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > 3.0:
            break  # stalled: some deliveries failed or were dropped
    return last, last_change


def run_mock(run: Run) -> dict[str, Any]:
    print("\n## Mock platform capacity (one core)", flush=True)
    with start_reference("bare", run.dir, cpu=LOAD_CPU) as sink:
        with start_mock(run.dir, f"{sink.url}/webhook") as mock:
            psids = _create_users(mock, USERS)
            actions_file = _requests_file(
                run,
                "actions",
                [
                    (f"/_mock/users/{p}/actions", {"type": "text", "text": "bench hello"})
                    for p in psids
                ],
            )
            sends_file = _requests_file(
                run,
                "sends",
                [
                    (
                        _SEND_PATH,
                        {
                            "recipient": {"id": p},
                            "messaging_type": "RESPONSE",
                            "message": {"text": "hi"},
                        },
                    )
                    for p in psids
                ],
            )
            run.log(f"wrk {run.seconds:g}s: user actions of {USERS} users -> signed deliveries")
            before = sink_count(sink)
            t0 = time.monotonic()
            actions = run_wrk_post(mock.url, actions_file, duration_s=run.seconds)
            load_end = time.monotonic()
            during = sink_count(sink) - before
            accepted = actions.requests - actions.errors
            delivered, done_at = _wait_for(lambda: sink_count(sink) - before, accepted)
            deliveries = {
                "accepted_actions": accepted,
                "delivered": delivered,
                "while_loaded_per_s": during / (load_end - t0),
                "overall_per_s": delivered / (done_at - t0),
                "drain_per_s": (delivered - during) / max(done_at - load_end, 1e-9),
            }
            run.log(f"wrk {run.seconds:g}s: Send API calls")
            before = _settle(lambda: sink_count(sink))
            sends = run_wrk_post(mock.url, sends_file, duration_s=run.seconds)
            receipts = _settle(lambda: sink_count(sink)) - before
    with start_stub(run.dir, name="stub-ref", cpu=RECEIVER_CPU) as stub:
        run.log(f"wrk {run.seconds:g}s: the bare Send API stub (reference)")
        stub_sends = run_wrk_post(stub.url, sends_file, duration_s=run.seconds)

    bot = _bot_rates(run)
    rows: list[list[object]] = [
        ["user actions/s (control API, acked, closed loop)", actions.ok_per_s, actions.p99_ms],
        [
            "  signed deliveries/s while those actions poured in",
            deliveries["while_loaded_per_s"],
            "-",
        ],
        ["  signed deliveries/s after the load (engine alone)", deliveries["drain_per_s"], "-"],
        ["  signed deliveries/s, first action to last delivery", deliveries["overall_per_s"], "-"],
        ["Send API calls/s (+ echo and delivery receipts)", sends.ok_per_s, sends.p99_ms],
        ["  bare Send API stub, same core (reference)", stub_sends.ok_per_s, stub_sends.p99_ms],
    ]
    print(table(["mock_meta on core 0", "per s", "p99 ms"], rows))
    deliveries_per_s = deliveries["overall_per_s"]
    ratios = {
        "sends_vs_bare_stub": ratio(sends.ok_per_s, stub_sends.ok_per_s),
        "deliveries_vs_bot_top_ack": ratio(deliveries_per_s, bot.get("top_ack", 0.0)),
        "deliveries_vs_bot_sustained": ratio(deliveries_per_s, bot.get("sustained", 0.0)),
        "sends_vs_bot_sustained": ratio(sends.ok_per_s, bot.get("sustained", 0.0)),
    }
    print(
        f"\ndelivered {deliveries['delivered']}/{deliveries['accepted_actions']} actions;  "
        f"mock Send API / bare stub = {ratios['sends_vs_bare_stub']:.2f};  "
        + (
            f"mock deliveries / bot top ack rate = {ratios['deliveries_vs_bot_top_ack']:.1f}x;  "
            if bot.get("top_ack")
            else ""
        )
        + (
            f"mock deliveries / bot sustained e2e = {ratios['deliveries_vs_bot_sustained']:.1f}x, "
            f"mock sends / bot sustained e2e = {ratios['sends_vs_bot_sustained']:.1f}x"
            if bot.get("sustained")
            else "(run `python -m bench all` for ratios against the bot)"
        ),
        flush=True,
    )
    results = {
        "deliveries": deliveries,
        "actions": vars(actions),
        "sends": vars(sends),
        "send_receipts_delivered": receipts,
        "stub_sends": vars(stub_sends),
        "ratios": ratios,
    }
    run.results["mock"] = results
    return results


def _bot_rates(run: Run) -> dict[str, float]:
    """The bot's numbers from earlier phases of this run (empty when they did not run)."""
    rates: dict[str, float] = {}
    ack = run.results.get("ack")
    if ack:
        rates["top_ack"] = float(ack["wrk"]["bot"]["ok_per_s"])
    e2e = run.results.get("e2e")
    if e2e and e2e["verdict"]["bot_sustained"]:
        rates["sustained"] = float(e2e["verdict"]["bot_sustained"])
    return rates
