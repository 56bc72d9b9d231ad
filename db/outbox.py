"""The outbox: messages for the outside world, written in the transaction of the fact they report.

A webhook or an SR delivery cannot join a database transaction, and sending it before the
commit could announce a fact that then rolls back. So the fact's transaction adds an
``outbox_events`` row (``add``), and the dispatcher (``workers.tasks.outbox``) sends it later, at
least once. Several subscribers may want one event (each webhook endpoint, SR delivery): the
dispatcher first copies the fact row into one row per subscriber of its kind (``fan_out``), so
each has its own attempts and backoff and one that fails never makes another send twice. It
then claims due subscriber rows (``claim_due``), calls each subscriber's handler outside any
transaction, and records the outcome (``mark_sent`` / ``mark_failed``). Every payload carries an
``event_id``, the same in every copy, for receivers to drop duplicates; payloads hold ids and
counts only, never PHI.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OutboxEvent, OutboxStatus, utcnow

# The default lease (settings.outbox_lease_s): a claimed row is due again after this if its
# dispatcher died before recording the outcome (the at-least-once part).
LEASE_S = 300
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class OutboxMessage:
    """What a handler gets: a claimed row, detached from any session."""

    id: int
    kind: str
    subscriber: str
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


def fan_out(session: Session, subscribers: Mapping[str, Collection[str]], limit: int) -> int:
    """Copy up to ``limit`` pending facts into one row per subscriber of their kind.

    ``subscribers`` maps a kind to its subscribers' names. A fact is then SENT (handed on);
    facts of a kind nobody subscribes to stay pending until someone does. A subscriber added
    later gets only the facts written after it. Returns the facts fanned out.
    """
    now = utcnow()
    query = (
        select(OutboxEvent)
        .where(
            OutboxEvent.status == OutboxStatus.PENDING,
            OutboxEvent.subscriber.is_(None),
            OutboxEvent.kind.in_([kind for kind, names in subscribers.items() if names]),
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    facts = list(session.scalars(query))
    for fact in facts:
        for name in sorted(subscribers[fact.kind]):
            session.add(_copy_for(fact, name, now))
        fact.status, fact.sent_at = OutboxStatus.SENT, now
    session.flush()
    return len(facts)


def _copy_for(fact: OutboxEvent, subscriber: str, now: datetime) -> OutboxEvent:
    return OutboxEvent(
        kind=fact.kind,
        subscriber=subscriber,
        source_id=fact.id,
        payload=dict(fact.payload),
        status=OutboxStatus.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )


def claim_due(
    session: Session, limit: int, subscribers: Collection[str], lease_s: float = LEASE_S
) -> list[OutboxMessage]:
    """Take up to ``limit`` due rows of ``subscribers``, oldest first, counting an attempt on each.

    Claimed rows are due again only after ``lease_s`` (if nobody records an outcome). On
    Postgres ``FOR UPDATE SKIP LOCKED`` lets two dispatchers claim disjoint rows; SQLite's
    IMMEDIATE transactions serialise them. Rows of a subscriber no longer configured wait.
    """
    now = utcnow()
    query = (
        select(OutboxEvent)
        .where(
            OutboxEvent.status == OutboxStatus.PENDING,
            OutboxEvent.next_attempt_at <= now,
            OutboxEvent.subscriber.in_(list(subscribers)),
        )
        .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for event in session.scalars(query):
        event.attempts += 1
        event.next_attempt_at = now + timedelta(seconds=lease_s)
        claimed.append(
            OutboxMessage(
                event.id, event.kind, str(event.subscriber), dict(event.payload), event.attempts
            )
        )
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
