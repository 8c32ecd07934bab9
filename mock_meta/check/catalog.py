"""The catalog of ``mock-meta check``: every check with its title, platform fact and fix.

Facts cite sections of the Messenger Platform reference the project is built against
(handshake §1, notifications §2, events §3, delivery §4, Send API §5–6, window §7, limits §8).
"""

from __future__ import annotations

from dataclasses import dataclass

from mock_meta.check import checks as c
from mock_meta.check.context import CheckFn


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    fact: str
    fix: str
    run: CheckFn


REF = "Messenger reference"
CHECKS: tuple[Check, ...] = (
    Check(
        "conversation",
        "Answers the conversation file",
        "a bot's replies are its own contract: the conversation file states them",
        "make the bot answer each turn as the conversation file says, or fix the file",
        c.conversation,
    ),
    Check(
        "handshake",
        "Verification handshake",
        f"{REF} §1: GET hub.mode=subscribe&hub.challenge&hub.verify_token → 200 with the "
        "challenge as the body when the token matches, else 403",
        "answer the GET with the hub.challenge value when hub.verify_token matches; 403 otherwise",
        c.handshake,
    ),
    Check(
        "unsigned_post",
        "Unsigned POST rejected",
        f"{REF} §2.4: every POST carries X-Hub-Signature-256 = sha256 HMAC of the raw body",
        "reject a POST without X-Hub-Signature-256 with 401/403 before acting on it",
        c.rejects("missing"),
    ),
    Check(
        "wrong_signature",
        "Wrongly signed POST rejected",
        f"{REF} §2.4: HMAC-SHA256(app secret, raw body bytes), compared in constant time",
        "compute HMAC-SHA256 over the raw body with the app secret and reject a mismatch",
        c.rejects("wrong"),
    ),
    Check(
        "sha1_only",
        "SHA-1-only POST rejected",
        f"{REF} §2.4: X-Hub-Signature (SHA-1) is legacy; X-Hub-Signature-256 is the one to verify",
        "verify X-Hub-Signature-256 and reject a POST that only carries the SHA-1 header",
        c.rejects("sha1_only"),
    ),
    Check(
        "escaped_bytes",
        "Meta-escaped body accepted",
        f"{REF} §2.4: Meta signs its \\uXXXX- and \\/-escaped bytes; re-serialising breaks the "
        "signature",
        "verify the signature over the raw request bytes, never over re-serialised JSON",
        c.escaped_bytes,
    ),
    Check(
        "ack_burst",
        "Ack within 5 s under a burst",
        f"{REF} §2.5 and §4: 200 within 5 s, else Meta retries, alerts and disables the webhook",
        "acknowledge with 200 at once and do the work (Send API calls) after the response",
        c.ack_burst,
    ),
    Check(
        "batched_entries",
        "Batched entries all handled",
        f"{REF} §2.3: entry[] may hold several objects, especially under high load",
        "iterate over every entry[] and every messaging[] event of one POST",
        c.batched_entries,
    ),
    Check(
        "duplicates",
        "Redelivered event answered once",
        f'{REF} §4: duplicates are possible — "your server should handle deduplication"',
        "deduplicate on message.mid (postbacks: mid or sender+timestamp+payload) before replying",
        c.duplicates,
    ),
    Check(
        "no_reply_to_receipts",
        "No reply to echoes, deliveries, reads",
        f"{REF} §3.6–3.8: message_echoes, message_deliveries and message_reads are receipts",
        "skip is_echo messages and delivery/read events; answer only what the user sent",
        c.no_reply_to_receipts,
    ),
    Check(
        "order",
        "Per-user order under reordering",
        f"{REF} §4: ordering is not guaranteed — use each event's timestamp",
        "process one user's events one at a time in timestamp order (hold briefly to sort)",
        c.order,
    ),
    Check(
        "send_retry_5xx",
        "Send API 5xx retried with back-off",
        f"{REF} §5.7 and §6: codes 1 and 2 (HTTP 500, is_transient) are temporary",
        "retry transient Send API errors (HTTP 5xx, code 1/2) with exponential back-off",
        c.send_retry(2, retried=True),
    ),
    Check(
        "send_retry_613",
        "Send API 613 retried with back-off",
        f"{REF} §6 and §8: 613 is the rate limit; calls succeed again after a pause",
        "on code 613 wait (back off) and retry; never retry in a tight loop",
        c.send_retry(613, retried=True),
    ),
    Check(
        "send_no_retry_190",
        "Send API 190 not retried",
        f"{REF} §6: 190 is an invalid or expired access token; retrying cannot succeed",
        "treat code 190 as permanent: alert and stop, do not retry",
        c.send_retry(190, retried=False),
    ),
    Check(
        "messaging_type",
        "Replies carry messaging_type RESPONSE",
        f"{REF} §5.2 and §7: messaging_type RESPONSE for replies inside the 24-hour window",
        "send replies with messaging_type RESPONSE",
        c.messaging_type,
    ),
    Check(
        "window",
        "No standard send outside the 24-hour window",
        f"{REF} §7: outside 24 h of the user's last message a standard send fails with "
        "code 10 / subcode 2018278",
        "judge the window from the event's timestamp: past 24 h, do not send a RESPONSE "
        "(use an allowed tag or stay silent)",
        c.window,
    ),
    Check(
        "seconds_timestamps",
        "Timestamps in seconds handled",
        f"{REF} §2.2: timestamps are epoch milliseconds, but Meta sometimes sends seconds",
        "normalise event timestamps: a value below 10^11 is in seconds, multiply by 1000",
        c.seconds_timestamps,
    ),
)
