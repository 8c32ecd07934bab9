"""Signed webhook bodies as Meta sends them: one text event per POST, unique ``mid`` each.

Bodies are serialised and signed by the mock's own wire code (``mock_meta.wire``: ASCII-only,
lowercase ``\\uXXXX``, ``\\/``), so a receiver that hashes anything but the raw bytes fails.

>>> sig, body = signed_text_event(b"test_app_secret", seq=7, run="r1")
>>> sig.startswith("sha256=") and b'"mid":"m_bench_r1_7"' in body
True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mock_meta.wire import serialize, sign_sha256

PAGE_ID = "104501234567890"
APP_SECRET = "test_app_secret"
VERIFY_TOKEN = "test_verify_token"
PAGE_TOKEN = "test_page_token"
# Senders rotate through this many PSIDs: many users each sending now and then, as in
# production, so per-sender ordering never serialises the whole run.
SENDERS = 1000
_FIRST_PSID = 6543210987654321


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for ``body``."""
    return sign_sha256(body, secret.decode())


def reply_token(run: str, seq: int) -> str:
    """The unique word each event's text carries; the bot's echo reply carries it back."""
    return f"e{run}x{seq}"


def text_event(seq: int, run: str, *, now_ms: int | None = None) -> dict[str, Any]:
    """One realistic text message envelope (one entry, one messaging object).

    Timestamps must be recent: the bot only replies inside the 24-hour window.
    """
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    psid = str(_FIRST_PSID + seq % SENDERS)
    return {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": ts,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": ts,
                        "message": {
                            "mid": f"m_bench_{run}_{seq}",
                            # A non-ASCII word and a URL: the bytes differ from a re-serialisation.
                            "text": f"héllo {reply_token(run, seq)} see https://example.com/a",
                        },
                    }
                ],
            }
        ],
    }


def signed_text_event(
    secret: bytes, *, seq: int, run: str, now_ms: int | None = None
) -> tuple[str, bytes]:
    """``(signature header, body bytes)`` for event ``seq`` of ``run``."""
    body = serialize(text_event(seq, run, now_ms=now_ms))
    return sign(secret, body), body


def iter_signed(secret: bytes, count: int, run: str) -> Iterator[tuple[str, bytes]]:
    """``count`` signed bodies stamped from now on, ten per millisecond, in send order."""
    base_ms = int(time.time() * 1000)
    for seq in range(count):
        yield signed_text_event(secret, seq=seq, run=run, now_ms=base_ms + seq // 10)


def write_bodies(path: Path, secret: bytes, count: int, run: str) -> Path:
    """Write ``count`` signed bodies, one ``<signature>\\t<body>`` line each (wrk reads it)."""
    with path.open("wb") as out:
        for sig, body in iter_signed(secret, count, run):
            out.write(sig.encode() + b"\t" + body + b"\n")
    return path


def read_bodies(path: Path) -> list[tuple[str, bytes]]:
    """Inverse of :func:`write_bodies`."""
    pairs: list[tuple[str, bytes]] = []
    with path.open("rb") as src:
        for line in src:
            sig, _, body = line.rstrip(b"\n").partition(b"\t")
            pairs.append((sig.decode(), body))
    return pairs
