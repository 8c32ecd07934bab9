"""X-Hub-Signature-256 verification on raw bytes (reference §2.4 test vectors)."""

from __future__ import annotations

import pytest

from bot.signature import SignatureVerifier, signature_for, verify_signature

SECRET = b"test_app_secret"
EMPTY_ENVELOPE = b'{"object":"page","entry":[]}'
# (A) as Meta sends it: non-ASCII as lowercase \uXXXX escapes, "/" escaped as "\/".
BODY_A = (
    b'{"object":"page","entry":[{"id":"111","time":1700000000000,"messaging":[{"sender":'
    b'{"id":"222"},"recipient":{"id":"111"},"timestamp":1700000000000,"message":{"mid":"m_1",'
    b'"text":"\\u00e4\\u00f6\\u00e5 https:\\/\\/x.io"}}]}]}'
)
# (B) the same object re-serialised as raw UTF-8 with "/" unescaped.
BODY_B = BODY_A.replace(b"\\u00e4\\u00f6\\u00e5", "äöå".encode()).replace(b"\\/", b"/")
# (C) the same object as Python's json.dumps default: \u escapes kept, "/" unescaped.
BODY_C = BODY_A.replace(b"\\/", b"/")
SIG_EMPTY = "sha256=5da47c9c7409e70d7a1851f0cfd9bc27786bd99587a9bf1dd5b51e23a2de03cf"
SIG_A = "sha256=0d0c625a59859e10e8512161cb12e1820482d0ba7afe816c76d7cccdefefea8e"
SIG_B = "sha256=678411a74eb9d994b2e526d90a12618f3ad3938aae2e581bb435f081ccb92fe6"
SIG_C = "sha256=524774b50a0c758b554f47e99069f425d71b1efa452be86fdd3f18084b7c9395"


@pytest.mark.parametrize(
    ("body", "header"),
    [(EMPTY_ENVELOPE, SIG_EMPTY), (BODY_A, SIG_A), (BODY_B, SIG_B), (BODY_C, SIG_C)],
)
def test_reference_vectors_match_the_documented_signatures(body: bytes, header: str) -> None:
    assert signature_for(body, SECRET) == header
    assert verify_signature(body, header, [SECRET]).ok


@pytest.mark.parametrize("reserialised", [BODY_B, BODY_C])
def test_meta_signature_does_not_verify_a_reserialised_body(reserialised: bytes) -> None:
    check = verify_signature(reserialised, SIG_A, [SECRET])
    assert not check.ok
    assert check.reason == "mismatch"


def test_escaped_meta_body_verifies_against_its_raw_bytes() -> None:
    assert verify_signature(BODY_A, SIG_A, [SECRET]).ok


@pytest.mark.parametrize("header", [None, ""])
def test_absent_header_is_missing(header: str | None) -> None:
    assert verify_signature(EMPTY_ENVELOPE, header, [SECRET]).reason == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "sha1=eb935a8cb91fd3b72ab4cd92acd4498e6e688bb0",
        "5da47c9c7409e70d7a1851f0cfd9bc27786bd99587a9bf1dd5b51e23a2de03cf",
        "sha256=",
        "sha256=5da47c9c",
        "sha256=" + "g" * 64,
        SIG_EMPTY + "00",
        "sha256= " + SIG_EMPTY[7:],
    ],
)
def test_wrong_form_is_malformed(header: str) -> None:
    assert verify_signature(EMPTY_ENVELOPE, header, [SECRET]).reason == "malformed"


def test_uppercase_hex_and_surrounding_space_are_tolerated() -> None:
    header = "  SHA256=" + SIG_EMPTY[7:].upper() + " "
    assert verify_signature(EMPTY_ENVELOPE, header, [SECRET]).ok


def test_signature_made_with_another_secret_is_a_mismatch() -> None:
    header = signature_for(EMPTY_ENVELOPE, b"other_secret")
    assert verify_signature(EMPTY_ENVELOPE, header, [SECRET]).reason == "mismatch"


def test_either_secret_verifies_during_rotation() -> None:
    previous = b"previous_secret"
    for secret in (SECRET, previous):
        header = signature_for(EMPTY_ENVELOPE, secret)
        assert verify_signature(EMPTY_ENVELOPE, header, [SECRET, previous]).ok


def test_no_configured_secret_verifies_nothing() -> None:
    assert verify_signature(EMPTY_ENVELOPE, SIG_EMPTY, []).reason == "mismatch"


def test_one_changed_byte_fails() -> None:
    tampered = EMPTY_ENVELOPE.replace(b"page", b"pagf")
    assert verify_signature(tampered, SIG_EMPTY, [SECRET]).reason == "mismatch"


def test_a_verifier_checks_body_after_body_without_carrying_state_over() -> None:
    """The prepared HMAC is copied per check: a second body (or a large one, which hashlib
    hashes outside the GIL) verifies exactly as a fresh check would."""
    verifier = SignatureVerifier([b"old_secret", SECRET])
    large = EMPTY_ENVELOPE[:-2] + b',"pad":"' + b"x" * 5000 + b'"}]}'
    for body in (BODY_A, BODY_B, large, BODY_A):
        assert verifier.check(body, signature_for(body, SECRET)).ok
        assert verifier.check(body, signature_for(body, b"other")).reason == "mismatch"
