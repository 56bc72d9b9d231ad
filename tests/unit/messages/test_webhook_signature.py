"""The webhook signature: what the sender writes the receiver's helper accepts; nothing else."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from messages.webhook_signature import SignatureError, sign, verify

BODY = b'{"id":"e1","type":"job.finished"}'
NOW = 1_790_000_000


def test_a_signed_body_verifies_and_matches_the_documented_recipe() -> None:
    header = sign("whsec", BODY, now=NOW)
    expected = hmac.new(b"whsec", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify("whsec", header, BODY, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    ("secret", "body", "now", "message"),
    [
        ("other", BODY, NOW, "no v1 signature matches"),
        ("whsec", BODY + b" ", NOW, "no v1 signature matches"),
        ("whsec", BODY, NOW + 301, "tolerance"),
        ("whsec", BODY, NOW - 301, "tolerance"),
    ],
)
def test_a_wrong_secret_a_changed_body_or_an_old_request_is_refused(
    secret: str, body: bytes, now: int, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(secret, sign("whsec", BODY, now=NOW), body, now=now)


def test_a_changed_timestamp_or_a_malformed_header_is_refused() -> None:
    signature = sign("whsec", BODY, now=NOW).split(",")[1]
    with pytest.raises(SignatureError, match="no v1"):
        verify("whsec", f"t={NOW + 1},{signature}", BODY, now=NOW)
    for header in (None, "", "v1=abc", f"t={NOW}", "t=soon,v1=abc"):
        with pytest.raises(SignatureError, match="malformed"):
            verify("whsec", header, BODY, now=NOW)


def test_any_of_several_signatures_may_match_while_a_secret_is_rotated() -> None:
    new = sign("new-secret", BODY, now=NOW)
    old = sign("old-secret", BODY, now=NOW).split(",")[1]
    assert verify("old-secret", f"{new},{old}", BODY, now=NOW) == NOW
