"""Keyed pseudonyms for DICOM identifiers, so results can be grouped without holding PHI.

``HMAC-SHA256(field key, value)``, hex, first 32 characters (128 bits). Each field has its own
key derived from ``settings.secret_key``, so the same string as a patient id and as a study UID
gives unrelated pseudonyms, and nothing computed for the audit anchors can be replayed here.
Deterministic for one secret: a submitter can group results by patient or study. Without the
secret a pseudonym cannot be reversed or recomputed from a guessed id (unlike a plain hash of
a short, guessable patient id). Rotating the secret breaks grouping across the rotation.

Per owner (issue 9): the worker (which does not know who submitted the job) computes the
pseudonym above; the collector re-keys it for the job's owner, ``HMAC(owner key, pseudonym)``,
with the owner's key derived from the secret and the API key's id (``for_owner``). What is
stored and served differs between owners, so the same patient does not link across tenants;
within one owner it stays stable.
"""

from __future__ import annotations

import hashlib
import hmac

# identifier -> (pseudonym key in the result's facts, purpose of its derived HMAC key)
FIELDS = {
    "patient_id": ("patient_pseudonym", b"medflow.pseudonym.v1.patient_id"),
    "study_uid": ("study_pseudonym", b"medflow.pseudonym.v1.study_uid"),
    "sop_uid": ("instance_pseudonym", b"medflow.pseudonym.v1.sop_uid"),
}
PSEUDONYM_LENGTH = 32  # hex characters: 128 bits, no collision in any realistic archive


def pseudonymize(identifiers: dict[str, str], secret: str) -> dict[str, str]:
    """Pseudonyms of the known, non-empty identifiers; any other key is dropped, never echoed."""
    if not secret:
        raise ValueError("pseudonyms need a secret")
    out: dict[str, str] = {}
    for field, (name, purpose) in FIELDS.items():
        # DICOM pads values to an even length (space, or NUL for UIs; PS3.5 6.2): not significant.
        value = str(identifiers.get(field) or "").strip(" \x00")
        if value:
            key = hmac.new(secret.encode("utf-8"), purpose, hashlib.sha256).digest()
            mac = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
            out[name] = mac[:PSEUDONYM_LENGTH]
    return out


_OWNER_PURPOSE = b"medflow.pseudonym.v2.owner:"
PSEUDONYM_NAMES = frozenset(name for name, _ in FIELDS.values())


Fact = str | int | float


def for_owner(facts: dict[str, Fact], secret: str, owner_id: int) -> dict[str, Fact]:
    """``facts`` with each pseudonym re-keyed for one owner; other facts unchanged."""
    if not secret:
        raise ValueError("pseudonyms need a secret")
    owner_key = hmac.new(
        secret.encode("utf-8"), _OWNER_PURPOSE + str(owner_id).encode(), hashlib.sha256
    ).digest()
    out = dict(facts)
    for name in PSEUDONYM_NAMES & set(facts):
        mac = hmac.new(owner_key, str(facts[name]).encode("utf-8"), hashlib.sha256).hexdigest()
        out[name] = mac[:PSEUDONYM_LENGTH]
    return out
