"""Webhook bodies and signatures exactly as Meta puts them on the wire.

Meta serialises ASCII-only JSON (non-ASCII as lowercase ``\\uXXXX``, astral characters as
UTF-16 surrogate pairs), escapes ``/`` as ``\\/``, uses compact separators, and signs those
exact bytes with the app secret (reference §2.4).

>>> body = serialize({"object": "page", "entry": []})
>>> body
b'{"object":"page","entry":[]}'
>>> webhook_headers(body, "test_app_secret")["X-Hub-Signature-256"][:15]
'sha256=5da47c9c'
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any, Literal

SignatureMode = Literal["valid", "wrong", "missing"]
SIGNATURE_MODES: tuple[SignatureMode, ...] = ("valid", "wrong", "missing")

USER_AGENT = "facebookexternalua"
SIGNATURE_256_HEADER = "X-Hub-Signature-256"
SIGNATURE_SHA1_HEADER = "X-Hub-Signature"
# One immutable encoder (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def serialize(payload: Any) -> bytes:
    """Encode ``payload`` the way Meta does: ASCII, ``\\uXXXX`` lowercase, ``\\/``, compact."""
    # The encoder already emits lowercase \uXXXX and surrogate pairs; "/" only ever occurs
    # inside strings in JSON text, so a plain replace escapes exactly the slashes in strings.
    return _ENCODE(payload).replace("/", "\\/").encode("ascii")


def new_traceparent() -> str:
    """A fresh, sampled W3C ``traceparent``: the root of a delivery's trace.

    >>> new_traceparent()[:3], len(new_traceparent())
    ('00-', 55)
    """
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def sign_sha256(body: bytes, secret: str) -> str:
    """``X-Hub-Signature-256`` value: ``sha256=`` + lowercase hex HMAC-SHA256 of the bytes."""
    # hmac.digest is OpenSSL's one-shot HMAC: no Python HMAC object per webhook.
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def sign_sha1(body: bytes, secret: str) -> str:
    """Legacy ``X-Hub-Signature`` value: ``sha1=`` + lowercase hex HMAC-SHA1 of the bytes."""
    return "sha1=" + hmac.digest(secret.encode(), body, "sha1").hex()


def webhook_headers(
    body: bytes,
    secret: str,
    *,
    signature_mode: SignatureMode = "valid",
    include_sha1: bool = True,
) -> dict[str, str]:
    """Headers of a webhook POST carrying ``body``.

    ``signature_mode="wrong"`` signs with a different key (well-formed but not verifiable);
    ``"missing"`` leaves both signature headers out.
    """
    if signature_mode not in SIGNATURE_MODES:
        raise ValueError(f"signature_mode must be one of {SIGNATURE_MODES}")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if signature_mode == "missing":
        return headers
    key = secret if signature_mode == "valid" else _wrong_key(secret)
    headers[SIGNATURE_256_HEADER] = sign_sha256(body, key)
    if include_sha1:
        headers[SIGNATURE_SHA1_HEADER] = sign_sha1(body, key)
    return headers


def _wrong_key(secret: str) -> str:
    # Deterministic and never equal to the secret, so "wrong" is reproducible across runs.
    return "not-" + secret
