"""The conformance checks: each drives the bot through the mock and judges one platform rule.

Each is an async function of a :class:`CheckContext` returning a :class:`Verdict`; the catalog
(``catalog.py``) gives each its title, the platform fact it rests on and what to fix.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from mock_meta.chaos import ChaosConfig
from mock_meta.check.context import CheckContext, CheckFn, Verdict, text_of
from mock_meta.faults import FaultSpec
from mock_meta.wire import SIGNATURE_SHA1_HEADER, SignatureMode, sign_sha1, webhook_headers

ACK_DEADLINE_SECONDS = 5.0
BURST_USERS, BURST_PER_USER = 10, 5
MIN_BACKOFF_SECONDS = 0.01
RETRY_FAILURES = 2  # consecutive transient errors armed by the retry checks
DAY = 24 * 3600.0


async def conversation(ctx: CheckContext) -> Verdict:
    psid = await ctx.new_user()
    for n, turn in enumerate(ctx.conversation.turns, start=1):
        action_id = await ctx.say(psid, turn)
        if not turn.expects_reply:
            extra = await ctx.quiet(psid)
            if extra is not None:
                return Verdict(False, f"turn {n}: expected no reply, got {text_of(extra)!r}")
            continue
        reply = await ctx.reply_to(psid, action_id)
        if reply is None:
            return Verdict(False, f"turn {n}: no reply within {ctx.reply_timeout:g} s")
        if not turn.accepts(text_of(reply)):
            got = text_of(reply)
            return Verdict(False, f"turn {n}: expected {turn.expectation()}, got {got!r}")
    return Verdict(True, f"{len(ctx.conversation.turns)} turns answered as the conversation says")


async def handshake(ctx: CheckContext) -> Verdict:
    good = await ctx.rt.run_handshake(ctx.callback_url, ctx.verify_token)
    if not good.ok:
        return Verdict(False, f"right token refused: {good.reason}")
    bad = await ctx.rt.run_handshake(ctx.callback_url, "not-" + ctx.verify_token)
    if bad.status != 403:
        return Verdict(False, f"a wrong verify token got HTTP {bad.status}, expected 403")
    return Verdict(True, "challenge echoed; a wrong verify token gets 403")


def rejects(mode: Literal["missing", "wrong", "sha1_only"]) -> CheckFn:
    async def run(ctx: CheckContext) -> Verdict:
        psid = await ctx.new_user()
        body = ctx.event_body(psid, "a post Meta did not sign")
        if mode == "sha1_only":
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_SHA1_HEADER: sign_sha1(body, ctx.app_secret),
            }
        else:
            signing: SignatureMode = "missing" if mode == "missing" else "wrong"
            headers = webhook_headers(body, ctx.app_secret, signature_mode=signing)
        status = await ctx.post_raw(body, headers)
        if isinstance(status, str) or not 400 <= status < 500:
            return Verdict(False, f"the bot answered {status}, expected a 4xx (401 or 403)")
        sent = await ctx.quiet(psid, within=1.5)
        if sent is not None:
            return Verdict(False, f"HTTP {status}, but the bot still sent a message to the user")
        return Verdict(True, f"rejected with HTTP {status}, nothing sent")

    return run


async def escaped_bytes(ctx: CheckContext) -> Verdict:
    psid = await ctx.new_user()
    action_id = await ctx.act(psid, {"type": "text", "text": "Grüße / 東京 ❤️ https://x.io/a"})
    record = await ctx.delivery(action_id)
    if record is None or record.state != "delivered":
        last = record.attempts[-1].status if record and record.attempts else None
        return Verdict(False, f"the Meta-escaped body was refused (last status {last})")
    if await ctx.reply_to(psid, action_id) is None:
        return Verdict(False, "accepted, but no reply to a non-ASCII text")
    return Verdict(True, "\\uXXXX and \\/ escaped body accepted and answered")


async def ack_burst(ctx: CheckContext) -> Verdict:
    turn = ctx.conversation.probe
    users = [await ctx.new_user() for _ in range(BURST_USERS)]
    ids = await asyncio.gather(
        *(ctx.say(psid, turn) for psid in users for _ in range(BURST_PER_USER))
    )
    records = await asyncio.gather(*(ctx.delivery(i, within=30) for i in ids))
    firsts = [r.attempts[0] for r in records if r is not None and r.attempts]
    slow = [a for a in firsts if a.outcome != "success"]
    worst = max((a.latency_seconds for a in firsts), default=0.0)
    if len(firsts) < len(ids) or slow:
        reasons = sorted({a.error or a.outcome for a in slow})
        return Verdict(False, f"{len(slow)} of {len(ids)} first POSTs not acked: {reasons}")
    if worst >= ACK_DEADLINE_SECONDS:
        return Verdict(False, f"slowest ack {worst:.2f} s (budget {ACK_DEADLINE_SECONDS:g} s)")
    return Verdict(True, f"{len(ids)} events acked, slowest in {worst * 1000:.0f} ms")


async def batched_entries(ctx: CheckContext) -> Verdict:
    ctx.rt.chaos.configure(ChaosConfig(seed=1, batch_max_entries=5))
    turn = ctx.conversation.probe
    users = [await ctx.new_user() for _ in range(5)]
    await ctx.rt.engine.stop()  # queue all five first, so one POST carries them together
    try:
        ids = [await ctx.say(psid, turn) for psid in users]
    finally:
        await ctx.rt.engine.start()
    replies = await asyncio.gather(*(ctx.reply_to(p, i) for p, i in zip(users, ids, strict=True)))
    batched = max(
        (a.batch_size for i in ids for d in ctx.rt.journal.deliveries(mid=i) for a in d.attempts),
        default=1,
    )
    missing = sum(r is None for r in replies)
    if missing:
        return Verdict(
            False, f"{missing} of 5 events in POSTs of up to {batched} entries unanswered"
        )
    return Verdict(True, f"every entry answered (POSTs carried up to {batched} entries)")


async def duplicates(ctx: CheckContext) -> Verdict:
    ctx.rt.chaos.configure(ChaosConfig(seed=1, duplicate_probability=1.0))
    psid = await ctx.new_user()
    turns = ctx.conversation.text_turns or [ctx.conversation.probe]
    for turn in turns:
        if await ctx.reply_to(psid, await ctx.say(psid, turn)) is None:
            return Verdict(False, "no reply to a redelivered message")
    await ctx.quiet(psid, within=2.0)
    extra = [s for s in ctx.messages_to(psid) if s.extra]
    if extra:
        return Verdict(False, f"{len(extra)} of {len(turns)} redelivered events answered twice")
    return Verdict(True, f"{len(turns)} events each delivered twice, each answered once")


async def no_reply_to_receipts(ctx: CheckContext) -> Verdict:
    policy = ctx.rt.policy
    policy.emit_echoes = policy.emit_deliveries = policy.emit_reads = True
    policy.refresh()
    psid = await ctx.new_user()
    turn = ctx.conversation.probe
    if await ctx.reply_to(psid, await ctx.say(psid, turn)) is None:
        return Verdict(None, "skipped: the bot did not answer the first turn")
    await ctx.act(psid, {"type": "read"})
    extra = await ctx.quiet(psid, within=3.0)
    if extra is not None:
        kinds = sorted({d.event_type for d in ctx.rt.journal.deliveries(psid=psid)})
        return Verdict(False, f"the bot sent {text_of(extra)!r} after receiving {kinds}")
    return Verdict(True, "echo, delivery and read events received, nothing sent back")


async def order(ctx: CheckContext) -> Verdict:
    turns = ctx.conversation.text_turns
    if len(turns) < 2:
        return Verdict(None, "skipped: the conversation has fewer than two text turns")
    ctx.rt.chaos.configure(ChaosConfig(seed=1, reorder_probability=1.0))
    psid = await ctx.new_user()
    await ctx.rt.engine.stop()  # queue them all, so chaos can deliver a later one first
    try:
        for turn in turns:
            await ctx.say(psid, turn)
            ctx.rt.clock.advance(0.2)  # a user types a moment apart: distinct timestamps
    finally:
        await ctx.rt.engine.start()
    replies = await ctx.until(lambda: len(ctx.messages_to(psid)) >= len(turns) or None)
    texts = [text_of(s) for s in ctx.messages_to(psid)][: len(turns)]
    if not replies:
        return Verdict(False, f"{len(texts)} of {len(turns)} replies arrived")
    wrong = [
        n for n, (t, text) in enumerate(zip(turns, texts, strict=True), 1) if not t.accepts(text)
    ]
    if wrong:
        return Verdict(False, f"replies out of the user's order: got {texts}")
    return Verdict(True, f"{len(turns)} reordered deliveries answered in the user's order")


def send_retry(code: int, *, retried: bool) -> CheckFn:
    failures = RETRY_FAILURES if retried else 1

    async def run(ctx: CheckContext) -> Verdict:
        psid = await ctx.new_user()
        ctx.rt.faults.arm(FaultSpec(code=code, count=failures, psid=psid))
        turn = ctx.conversation.probe
        await ctx.say(psid, turn)
        if not await ctx.until(lambda: ctx.sends_to(psid) or None):
            return Verdict(None, "skipped: the bot never called the Send API")
        wanted = failures + 1 if retried else 2
        await ctx.until(lambda: len(ctx.sends_to(psid)) >= wanted or None, within=8.0)
        sends = ctx.sends_to(psid)
        if not retried:
            if len(sends) > 1:
                return Verdict(False, f"retried {len(sends) - 1} time(s) after error {code}")
            return Verdict(True, f"error {code} not retried")
        if len(sends) < wanted or not sends[-1].ok:
            return Verdict(False, f"{failures} errors {code} in a row: the user got no reply")
        # Full jitter may draw one short pause, never two: a tight loop takes a few ms.
        span = sends[failures].at - sends[0].at
        if span < MIN_BACKOFF_SECONDS:
            return Verdict(False, f"{failures} retries within {span * 1000:.0f} ms: no back-off")
        return Verdict(True, f"{failures} errors {code} retried over {span:.2f} s, then delivered")

    return run


async def messaging_type(ctx: CheckContext) -> Verdict:
    psid = await ctx.new_user()
    turn = ctx.conversation.probe
    reply = await ctx.reply_to(psid, await ctx.say(psid, turn))
    if reply is None:
        return Verdict(None, "skipped: the bot did not answer the first turn")
    kind = reply.request.get("messaging_type")
    if kind != "RESPONSE":
        return Verdict(False, f"a reply inside the window was sent with messaging_type {kind!r}")
    return Verdict(True, "replies carry messaging_type RESPONSE")


async def window(ctx: CheckContext) -> Verdict:
    # A message that reaches the bot a day late (Meta's retries after an outage): the user's
    # last message is 25 h old, so a standard send is refused with (#10) 2018278.
    psid = await ctx.new_user()
    turn = ctx.conversation.probe
    body = ctx.event_body(psid, turn.text or "hello", age_seconds=DAY + 3600)
    status = await ctx.post_raw(body, webhook_headers(body, ctx.app_secret))
    if status != 200:
        return Verdict(None, f"skipped: the bot answered the late event with {status}")
    await ctx.quiet(psid, within=3.0)
    refused = [s for s in ctx.sends_to(psid) if s.error_code == 10]
    if refused:
        return Verdict(False, "answered a message 25 h old with a standard send: refused (#10)")
    return Verdict(True, "a message 25 h old got no standard send")


async def seconds_timestamps(ctx: CheckContext) -> Verdict:
    ctx.rt.engine.timestamp_unit = "seconds"
    psid = await ctx.new_user()
    turn = ctx.conversation.probe
    action_id = await ctx.say(psid, turn)
    record = await ctx.delivery(action_id)
    if record is None or record.state != "delivered":
        return Verdict(False, "an event with a timestamp in seconds was not acknowledged")
    if await ctx.reply_to(psid, action_id) is None:
        return Verdict(False, "an event with a timestamp in seconds was never answered")
    return Verdict(True, "an event timestamped in seconds was answered")
