"""Idempotency keys: stored as a keyed hash, and a replay must repeat the same request.

The client's key may carry identifiers (an accession number, a patient id); the job row, and
so a Postgres log line about a unique-key race, holds only ``HMAC(secret, key)``. The digest
of the request (model, seal and the names of its images) is kept in the job's
``job.submitted`` audit event; a later request with the same key but another digest is
refused (``IDEMPOTENCY_KEY_REUSED``) instead of silently answered with the old job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, Job

_PURPOSE = b"medflow.idempotency.v1\n"
SUBMITTED = "job.submitted"


class IdempotencyKeyReused(Exception):
    """The key names an earlier job whose request differed from this one."""

    def __init__(self, job_id: str) -> None:
        super().__init__("idempotency key reused with another request")
        self.job_id = job_id


def key_hash(secret: str, key: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), _PURPOSE + key.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


def request_digest(model: str, seal: bool, names: Sequence[str]) -> str:
    text = json.dumps({"model": model, "seal": seal, "images": list(names)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_same_request(session: Session, job: Job, digest: str | None) -> None:
    """Raise IdempotencyKeyReused when ``job`` was submitted by a request other than ``digest``.

    Jobs submitted before digests were recorded, or a caller without one, are not compared.
    """
    if digest is None:
        return
    query = select(AuditEvent.payload).where(
        AuditEvent.object_type == "job",
        AuditEvent.object_id == job.id,
        AuditEvent.action == SUBMITTED,
    )
    payload = session.scalars(query).first() or {}
    recorded = payload.get("request_digest")
    if recorded is not None and recorded != digest:
        raise IdempotencyKeyReused(job.id)
