"""The signature on a MedFlow webhook, and the check a receiver runs (docs/webhooks.md).

Header: ``X-MedFlow-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 under the endpoint's secret of ``"<t>." + body`` (the raw request body bytes), as
Stripe and Standard Webhooks do. The timestamp is signed with the body so that a captured
request cannot be replayed later: receivers refuse one older than a tolerance (5 minutes).
More than one ``v1=`` may appear (a secret being rotated): one match is enough.

A receiver needs only this module (standard library only)::

    from messages.webhook_signature import verify, SignatureError
    verify(secret, request.headers["X-MedFlow-Signature"], request.get_data())
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-MedFlow-Signature"
EVENT_ID_HEADER = "X-MedFlow-Event-Id"  # the same on every attempt: de-duplicate by it
EVENT_TYPE_HEADER = "X-MedFlow-Event"
TOLERANCE_S = 300


class SignatureError(ValueError):
    """The request is not signed by the secret, or the signature is too old or malformed."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: float | None = None) -> str:
    """The header value for ``body`` sent now."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check ``header`` against ``body``; returns its timestamp, or raises SignatureError."""
    timestamp, candidates = _parse(header or "")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance (replayed or clock skew)")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("no v1 signature matches")
    return timestamp


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed {SIGNATURE_HEADER}: expected t=...,v1=...")
    return timestamp, candidates
