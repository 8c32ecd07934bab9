"""The benchmark's pure helpers: what it sends, how it reads results, how it searches."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from bench.ack import wrk_results
from bench.e2e import Step, analyse, measure, next_rate
from bench.events import APP_SECRET, signed_text_event
from bench.mock_bench import _bot_rates
from bench.openloop import response_length
from bench.procs import BenchError
from bench.receivers import create_bare_app
from bench.runner import Run, openloop_command
from bench.send_stub import StubState, _batch_items, _decode_call
from bench.stats import percentile, table
from bench.wrk import WrkResult, parse_wrk_output
from bot.signature import verify_signature

SECRET = APP_SECRET.encode()


def test_bodies_verify_only_over_the_raw_bytes_meta_sends() -> None:
    signature, body = signed_text_event(SECRET, seq=3, run="t")
    reserialised = json.dumps(json.loads(body)).encode()
    assert verify_signature(body, signature, [SECRET]).ok
    assert not verify_signature(reserialised, signature, [SECRET]).ok
    assert body.isascii() and b"\\u00e9" in body and b"\\/" in body


def test_each_event_carries_its_own_mid() -> None:
    bodies = {signed_text_event(SECRET, seq=i, run="t")[1] for i in range(3)}
    mids = {json.loads(b)["entry"][0]["messaging"][0]["message"]["mid"] for b in bodies}
    assert len(mids) == 3


def test_percentile_is_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([], 99) == 0.0


def test_table_aligns_columns() -> None:
    lines = table(["name", "n"], [["a", 1234], ["longer", 0.5]]).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert "1,234" in lines[2]


def test_wrk_result_counts_non_2xx_as_errors() -> None:
    raw = {"requests": 100, "duration_us": 1_000_000, "connect": 0, "read": 0, "write": 0}
    raw |= {"status": 10, "timeout": 0, "p50_us": 1, "p90_us": 2, "p99_us": 3000, "max_us": 4}
    raw["wraps"] = 0
    result = parse_wrk_output("Running...\nBENCH_JSON " + json.dumps(raw) + "\n")
    assert result.ok_per_s == 90
    assert result.p99_ms == 3


def test_wrk_without_a_result_line_is_an_error() -> None:
    with pytest.raises(BenchError):
        parse_wrk_output("unable to connect")


def test_response_length_waits_for_the_whole_body() -> None:
    head = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n"
    assert response_length(head + b"ab") is None
    assert response_length(head + b"abcde" + b"HTTP/1.1") == (401, len(head) + 5)


def test_backlog_grows_when_replies_lag_the_offered_rate() -> None:
    # 100 events/s offered for 5 s, replies at 50/s.
    samples = [(t / 10, int(t / 10 * 50)) for t in range(51)]
    flow = analyse(samples, t0=0.0, rate=100, seconds=5)
    assert flow.reply_rate == pytest.approx(50)
    assert flow.backlog_end == pytest.approx(250)


def test_rate_search_grows_then_bisects_then_stops() -> None:
    assert next_rate(100, [100], []) == 160
    assert next_rate(160, [100], [160]) == 130
    assert next_rate(100, [], [100]) == 60
    assert next_rate(108, [100], [108]) is None


def test_stub_counts_distinct_and_repeated_replies() -> None:
    state = StubState()
    for text in ("a", "b", "a"):
        state.record({"recipient": {"id": "1"}, "message": {"text": text}})
    snapshot = state.snapshot()
    assert (snapshot["calls"], snapshot["unique"], snapshot["duplicates"]) == (3, 2, 1)


def test_stub_reads_graph_batches_as_form_or_json() -> None:
    form = urlencode({"batch": json.dumps([{"body": "message=%7B%7D"}])}).encode()
    assert len(_batch_items(form, b"application/x-www-form-urlencoded")) == 1
    call = _decode_call('recipient={"id":"7"}&message={"text":"hi"}', b"")
    assert call["recipient"] == {"id": "7"} and call["message"] == {"text": "hi"}


async def test_bare_receiver_acks_signed_events_and_rejects_forgeries() -> None:
    app = create_bare_app(SECRET)
    signature, body = signed_text_event(SECRET, seq=1, run="t")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        good = await client.post(
            "/webhook", content=body, headers={"X-Hub-Signature-256": signature}
        )
        bad = await client.post(
            "/webhook", content=body + b" ", headers={"X-Hub-Signature-256": signature}
        )
        count = await client.get("/_count")
    assert (good.status_code, good.text) == (200, "EVENT_RECEIVED")
    assert bad.status_code == 401
    assert count.text == "1"


def test_the_generator_sends_exactly_the_bodies_a_step_writes_for_it() -> None:
    # A bisected rate: rounded to 1492/s the generator sent one POST more than the 8,951
    # bodies written, re-using a mid the bot then rightly acked as a duplicate.
    rate, seconds = 1491.816697212801, 6.0
    cmd = openloop_command(8000, Path("bodies.txt"), rate, seconds, 64, 5.0)
    sent = int(float(cmd[cmd.index("--rate") + 1]) * float(cmd[cmd.index("--duration") + 1]))
    assert sent == int(rate * seconds) == 8950  # bench.e2e writes one body more than this


def test_the_sustain_searches_take_turns_and_each_finds_its_own_capacity(tmp_path: Path) -> None:
    capacity = {"express": 700.0, "bot": 1500.0}
    calls: list[tuple[str, float]] = []

    def fake_step(run: Run, name: str, rate: float, seconds: float) -> Step:
        calls.append((name, rate))
        replies = min(rate, capacity[name])
        ok = rate <= capacity[name]
        return Step(
            name,
            rate,
            seconds,
            acked=int(rate * seconds),
            sent=int(rate * seconds),
            replies=int(rate * seconds) if ok else 0,
            duplicates=0,
            reply_rate=replies,
            backlog_end=0.0 if ok else rate * seconds,
            backlog_max=0.0,
            drain_s=0.1 if ok else None,
            ack_p50_ms=1.0,
            ack_p99_ms=2.0,
            gen_cpu=0.1,
        )

    found = measure(Run(dir=tmp_path, search_steps=5), ("express", "bot"), fake_step)

    # Both probes first, then one sustain step of each in turn.
    assert calls[:2] == [("express", 4000.0), ("bot", 4000.0)]
    assert [name for name, _ in calls[2:6]] == ["express", "bot", "express", "bot"]
    for name in ("express", "bot"):
        best = found[name]["best"]
        assert best is not None and 0.8 * capacity[name] <= best.rate <= capacity[name]
        assert len(found[name]["steps"]) <= 5


def test_the_mock_phase_reads_the_bots_median_ack_rate_from_the_ack_phase(tmp_path: Path) -> None:
    def wrk(requests: int) -> WrkResult:
        return WrkResult(requests, 1.0, 0, 1.0, 2.0, 3.0, 4.0, 0)

    turns = [{"bare": wrk(100), "bot": wrk(b)} for b in (30, 50, 20)]
    run = Run(dir=tmp_path, results={"ack": wrk_results(turns)})

    assert _bot_rates(run) == {"top_ack": 30.0}
