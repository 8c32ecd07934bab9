"""Webhook bytes and signatures match Meta's (reference §2.4 vectors)."""

from __future__ import annotations

import json

import pytest

from mock_meta.wire import serialize, sign_sha1, sign_sha256, webhook_headers

SECRET = "test_app_secret"
BODY_A = (
    b'{"object":"page","entry":[{"id":"111","time":1700000000000,"messaging":[{"sender":'
    b'{"id":"222"},"recipient":{"id":"111"},"timestamp":1700000000000,"message":{"mid":"m_1",'
    b'"text":"\\u00e4\\u00f6\\u00e5 https:\\/\\/x.io"}}]}]}'
)
OBJECT_A = json.loads(BODY_A)


def test_serialising_the_reference_object_gives_body_a_byte_for_byte() -> None:
    assert serialize(OBJECT_A) == BODY_A


@pytest.mark.parametrize(
    ("body", "sha256", "sha1"),
    [
        (
            b'{"object":"page","entry":[]}',
            "sha256=5da47c9c7409e70d7a1851f0cfd9bc27786bd99587a9bf1dd5b51e23a2de03cf",
            "sha1=eb935a8cb91fd3b72ab4cd92acd4498e6e688bb0",
        ),
        (
            BODY_A,
            "sha256=0d0c625a59859e10e8512161cb12e1820482d0ba7afe816c76d7cccdefefea8e",
            "sha1=49e194f8cc0c07e0d9f1abb302525cac6764a1b8",
        ),
    ],
)
def test_signatures_match_the_reference_vectors(body: bytes, sha256: str, sha1: str) -> None:
    assert sign_sha256(body, SECRET) == sha256
    assert sign_sha1(body, SECRET) == sha1
    headers = webhook_headers(body, SECRET)
    assert headers["X-Hub-Signature-256"] == sha256
    assert headers["X-Hub-Signature"] == sha1


def test_body_b_and_c_variants_sign_differently_from_what_meta_sends() -> None:
    # (B) raw UTF-8 and (C) Python's default dumps are what naive bots recompute.
    b_variant = BODY_A.replace(b"\\u00e4\\u00f6\\u00e5", "äöå".encode()).replace(b"\\/", b"/")
    c_variant = json.dumps(OBJECT_A, separators=(",", ":")).encode()
    assert sign_sha256(b_variant, SECRET).endswith(
        "678411a74eb9d994b2e526d90a12618f3ad3938aae2e581bb435f081ccb92fe6"
    )
    assert sign_sha256(c_variant, SECRET).endswith(
        "524774b50a0c758b554f47e99069f425d71b1efa452be86fdd3f18084b7c9395"
    )
    assert serialize(OBJECT_A) not in (b_variant, c_variant)


def test_body_is_pure_ascii_with_lowercase_escapes_and_surrogate_pairs() -> None:
    body = serialize({"text": "ÄÖ ❤️ 😀 中文"})
    body.decode("ascii")  # raises if anything slipped through unescaped
    assert body == b'{"text":"\\u00c4\\u00d6 \\u2764\\ufe0f \\ud83d\\ude00 \\u4e2d\\u6587"}'
    assert json.loads(body) == {"text": "ÄÖ ❤️ 😀 中文"}


def test_every_forward_slash_is_escaped_and_backslashes_survive() -> None:
    payload = {"url": "https://cdn.fbsbx.com/a/b", "path\\/odd": "C:\\dir/"}
    body = serialize(payload)
    assert b"/" not in body.replace(b"\\/", b"")
    assert json.loads(body) == payload


def test_separators_are_compact() -> None:
    assert serialize({"a": [1, {"b": None}]}) == b'{"a":[1,{"b":null}]}'


def test_headers_carry_meta_user_agent_and_json_content_type() -> None:
    headers = webhook_headers(b"{}", SECRET)
    assert headers["User-Agent"] == "facebookexternalua"
    assert headers["Content-Type"] == "application/json"


def test_sha1_header_can_be_switched_off() -> None:
    headers = webhook_headers(b"{}", SECRET, include_sha1=False)
    assert "X-Hub-Signature" not in headers
    assert headers["X-Hub-Signature-256"].startswith("sha256=")


def test_wrong_signature_is_well_formed_but_does_not_verify() -> None:
    headers = webhook_headers(BODY_A, SECRET, signature_mode="wrong")
    assert headers["X-Hub-Signature-256"].startswith("sha256=")
    assert len(headers["X-Hub-Signature-256"]) == len("sha256=") + 64
    assert headers["X-Hub-Signature-256"] != sign_sha256(BODY_A, SECRET)
    assert headers["X-Hub-Signature"] != sign_sha1(BODY_A, SECRET)


def test_missing_signature_sends_neither_header() -> None:
    headers = webhook_headers(BODY_A, SECRET, signature_mode="missing")
    assert not {"X-Hub-Signature-256", "X-Hub-Signature"} & set(headers)


def test_unknown_signature_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        webhook_headers(b"{}", SECRET, signature_mode="bogus")  # type: ignore[arg-type]
