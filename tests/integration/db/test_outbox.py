"""The outbox on SQLite and Postgres: job.finished written with every close, claims, outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from db import outbox
from db.collect import record_results
from db.job_close import JOB_FINISHED
from db.jobs import cancel_job, seal_job
from db.models import Job, OutboxEvent, OutboxStatus, utcnow
from db.session import session_scope
from messages.scored_image import ScoredImage

Factory = sessionmaker[Session]
MakeJob = Callable[..., tuple[Job, list[Any]]]


def finished_events(session_factory: Factory) -> list[OutboxEvent]:
    with session_scope(session_factory) as session:
        query = select(OutboxEvent).where(
            OutboxEvent.kind == JOB_FINISHED, OutboxEvent.subscriber.is_(None)
        )
        return list(session.scalars(query.order_by(OutboxEvent.id)))


def fail_all(session: Session, job: Job, images: list[Any]) -> None:
    results = [ScoredImage.failure(image.id, "DECODE_FAILED", "bad") for image in images]
    record_results(session, job.id, results)


def test_a_job_closed_by_its_last_result_writes_one_job_finished(
    session_factory: Factory, make_job: MakeJob
) -> None:
    job, images = make_job(2)
    with session_scope(session_factory) as session:
        fail_all(session, job, images[:1])
    assert finished_events(session_factory) == []  # one image still pending
    with session_scope(session_factory) as session:
        fail_all(session, job, images)  # the first is a duplicate delivery: ignored
        fail_all(session, job, images)  # a redelivery of the whole chunk: the job is final
    (event,) = finished_events(session_factory)
    payload = dict(event.payload)
    event_id = payload.pop("event_id")
    assert len(event_id) == 32 and event.status == OutboxStatus.PENDING
    assert payload == {
        "job_id": job.id,
        "owner_key_id": job.owner_key_id,
        "status": "failed",
        "model": job.model_name,
        "version": job.model_version,
        "model_ref": job.model_ref,
        "total": 2,
        "succeeded": 0,
        "failed": 2,
        "cancelled": 0,
        "finished_at": payload["finished_at"],
    }
    assert payload["finished_at"].startswith(str(utcnow().year))


def test_a_rolled_back_close_writes_none(session_factory: Factory, make_job: MakeJob) -> None:
    job, images = make_job(1)
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        fail_all(session, job, images)
        raise RuntimeError("the collector died before its commit")
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        cancel_job(session, job, "key:1")
        raise RuntimeError
    assert finished_events(session_factory) == []


def test_cancel_and_a_close_at_seal_write_one_each(
    session_factory: Factory, make_job: MakeJob
) -> None:
    cancelled, _ = make_job(1)
    with session_scope(session_factory) as session:
        cancel_job(session, cancelled, "key:1")
    closed_at_seal, images = make_job(1, seal=False)
    with session_scope(session_factory) as session:
        fail_all(session, closed_at_seal, images)  # done while open: closes only at the seal
    assert finished_events(session_factory)[0].payload["status"] == "cancelled"
    with session_scope(session_factory) as session:
        seal_job(session, closed_at_seal)
    statuses = [
        (e.payload["job_id"], e.payload["status"]) for e in finished_events(session_factory)
    ]
    assert statuses == [(cancelled.id, "cancelled"), (closed_at_seal.id, "failed")]


def fan_out_one(session: Session, kind: str, *subscribers: str) -> list[int]:
    """Fan out the pending facts of ``kind``; the ids of the subscriber rows made."""
    outbox.fan_out(session, {kind: set(subscribers)}, 10)
    query = select(OutboxEvent.id).where(OutboxEvent.subscriber.is_not(None))
    return list(session.scalars(query.order_by(OutboxEvent.id)))


def test_a_fact_fans_out_once_to_each_subscriber_of_its_kind(session_factory: Factory) -> None:
    with session_scope(session_factory) as session:
        fact = outbox.add(session, "test.kind", {"n": 1})
        other = outbox.add(session, "unhandled.kind", {"n": 2}).id
        fact_id, event_id = fact.id, fact.payload["event_id"]
    with session_scope(session_factory) as session:
        assert outbox.fan_out(session, {"test.kind": {"b", "a"}, "unhandled.kind": set()}, 10) == 1
        assert outbox.fan_out(session, {"test.kind": {"a", "b", "c"}}, 10) == 0  # once only
    with session_scope(session_factory) as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        copies = [(r.subscriber, r.source_id, r.payload["event_id"]) for r in rows[2:]]
        assert copies == [("a", fact_id, event_id), ("b", fact_id, event_id)]
        assert (rows[0].status, rows[1].id, rows[1].status) == (
            OutboxStatus.SENT,
            other,
            OutboxStatus.PENDING,  # nobody subscribes to its kind: it waits
        )
        assert {r.status for r in rows[2:]} == {OutboxStatus.PENDING}


def test_claims_take_due_rows_of_known_subscribers_and_lease_them(
    session_factory: Factory,
) -> None:
    with session_scope(session_factory) as session:
        outbox.add(session, "test.kind", {"n": 1})
    with session_scope(session_factory) as session:
        first, other = fan_out_one(session, "test.kind", "a", "b")
    with session_scope(session_factory) as session:
        claimed = outbox.claim_due(session, 10, {"a", "gone"})
    assert [(m.id, m.kind, m.subscriber, m.payload["n"], m.attempts) for m in claimed] == [
        (first, "test.kind", "a", 1, 1)
    ]
    with session_scope(session_factory) as session:
        assert outbox.claim_due(session, 10, {"a", "b"})[0].id == other
        assert outbox.claim_due(session, 10, {"a"}) == []  # leased, not due yet
        session.execute(update(OutboxEvent).values(next_attempt_at=utcnow()))
    with session_scope(session_factory) as session:
        again = outbox.claim_due(session, 1, {"a"})
    assert [(m.id, m.attempts) for m in again] == [(first, 2)]  # a lost outcome: sent again


def test_failures_back_off_then_die_and_success_is_recorded(session_factory: Factory) -> None:
    with session_scope(session_factory) as session:
        outbox.add(session, "test.kind", {})
    with session_scope(session_factory) as session:
        ids = fan_out_one(session, "test.kind", "a", "b")
    with session_scope(session_factory) as session:
        outbox.claim_due(session, 10, {"a", "b"})
        before = utcnow()
        assert outbox.mark_failed(session, ids[0], "Timeout: " + "x" * 900, 60, 2) == "pending"
        outbox.mark_sent(session, ids[1])
    with session_scope(session_factory) as session:
        failed, sent = (session.get_one(OutboxEvent, i) for i in ids)
        assert failed.next_attempt_at - before >= timedelta(seconds=59)
        assert failed.last_error is not None and len(failed.last_error) == outbox.MAX_ERROR_CHARS
        assert (sent.status, sent.sent_at is not None) == (OutboxStatus.SENT, True)
        failed.next_attempt_at = utcnow()
    with session_scope(session_factory) as session:
        outbox.claim_due(session, 10, {"a"})
        assert outbox.mark_failed(session, ids[0], "Timeout", 60, 2) == OutboxStatus.DEAD
