"""The outbox: messages for the outside world, written in the transaction of the fact they report.

A webhook or an SR delivery cannot join a database transaction, and sending it before the
commit could announce a fact that then rolls back. So the fact's transaction adds an
``outbox_events`` row (``add``), and the dispatcher (``workers.tasks.outbox``) sends it later, at
least once: it claims due rows (``claim_due``), calls the handler registered for their kind
outside any transaction, and records the outcome (``mark_sent`` / ``mark_failed``). Every
payload carries an ``event_id`` for the receiver to drop duplicates; payloads hold ids and
counts only, never PHI.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OutboxEvent, OutboxStatus, utcnow

# A claimed row is due again after this if its dispatcher died before recording the outcome
# (the at-least-once part); a handler must finish well within it.
LEASE_S = 300
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class OutboxMessage:
    """What a handler gets: a claimed row, detached from any session."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including the one in progress


def add(session: Session, kind: str, payload: dict[str, Any]) -> OutboxEvent:
    """Queue a message in the caller's transaction; it exists if and only if that commits."""
    now = utcnow()
    event = OutboxEvent(
        kind=kind,
        payload={"event_id": uuid.uuid4().hex, **payload},
        status=OutboxStatus.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(event)
    session.flush()
    return event


def claim_due(
    session: Session, limit: int, kinds: Collection[str], lease_s: float = LEASE_S
) -> list[OutboxMessage]:
    """Take up to ``limit`` due rows of ``kinds``, oldest first, counting an attempt on each.

    Claimed rows are due again only after ``lease_s`` (if nobody records an outcome). On
    Postgres ``FOR UPDATE SKIP LOCKED`` lets two dispatchers claim disjoint rows; SQLite's
    IMMEDIATE transactions serialise them. Kinds without a handler stay pending, untouched.
    """
    now = utcnow()
    query = (
        select(OutboxEvent)
        .where(
            OutboxEvent.status == OutboxStatus.PENDING,
            OutboxEvent.next_attempt_at <= now,
            OutboxEvent.kind.in_(list(kinds)),
        )
        .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for event in session.scalars(query):
        event.attempts += 1
        event.next_attempt_at = now + timedelta(seconds=lease_s)
        claimed.append(OutboxMessage(event.id, event.kind, dict(event.payload), event.attempts))
    session.flush()
    return claimed


def mark_sent(session: Session, event_id: int) -> None:
    event = session.get_one(OutboxEvent, event_id, with_for_update=True)
    event.status, event.sent_at, event.last_error = OutboxStatus.SENT, utcnow(), None


def mark_failed(
    session: Session, event_id: int, error: str, backoff_s: float, max_attempts: int
) -> OutboxStatus:
    """Record a failed attempt: due again in ``backoff_s``, or DEAD after ``max_attempts``."""
    event = session.get_one(OutboxEvent, event_id, with_for_update=True)
    event.last_error = error[:MAX_ERROR_CHARS]
    if event.attempts >= max_attempts:
        event.status = OutboxStatus.DEAD
    else:
        event.next_attempt_at = utcnow() + timedelta(seconds=backoff_s)
    return event.status
