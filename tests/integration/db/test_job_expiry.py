"""Abandoned uploads end: an open job idle past the limit is sealed by the reconciler with its
images' states intact (an empty one is cancelled), each with an audit event (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from db.collect import record_results
from db.job_expiry import RECONCILER, idle_open_jobs, seal_idle
from db.jobs import open_job
from db.models import AuditEvent, Image, Job, JobStatus, utcnow
from db.session import session_scope
from messages.scored_image import ScoredImage

Factory = sessionmaker[Session]
IDLE_S = 600


def test_idle_open_job_is_sealed_with_its_images_intact(
    session_factory: Factory, make_job: Callable[..., Any]
) -> None:
    job, images = make_job(3, seal=False)
    fresh, _ = make_job(1, seal=False)
    with session_scope(session_factory) as session:
        record_results(session, job.id, [ScoredImage.failure(images[0].id, "CORRUPT_IMAGE", "x")])
        long_ago = utcnow() - timedelta(seconds=IDLE_S + 60)
        session.execute(update(Job).where(Job.id == job.id).values(received_at=long_ago))
    now = utcnow()
    with session_scope(session_factory) as session:
        assert idle_open_jobs(session, IDLE_S, now, 100) == [job.id]  # not the fresh one
        assert seal_idle(session, job.id, IDLE_S, now) == []
        assert seal_idle(session, job.id, IDLE_S, now) == []  # sealed already: nothing more

    with session_scope(session_factory) as session:
        sealed = session.get_one(Job, job.id)
        states = [
            i.status.value for i in session.scalars(select(Image).where(Image.job_id == job.id))
        ]
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.object_id == job.id, AuditEvent.action == "job.sealed"
            )
        ).one()
        assert session.get_one(Job, fresh.id).status == JobStatus.OPEN
    assert (sealed.status, sealed.failed) == (JobStatus.RUNNING, 1)
    assert sorted(states) == ["failed", "pending", "pending"]  # the rest still processes
    assert (event.actor, event.payload) == (RECONCILER, {"count": 3, "reason": "idle"})


def test_idle_empty_job_is_cancelled(session_factory: Factory, owner: Any, model: Any) -> None:
    with session_scope(session_factory) as session:
        job, _ = open_job(session, owner, model, None)
        job_id = job.id
        session.flush()
        long_ago = utcnow() - timedelta(seconds=IDLE_S + 60)
        session.execute(update(Job).where(Job.id == job_id).values(created_at=long_ago))
    now = utcnow()
    with session_scope(session_factory) as session:
        assert job_id in idle_open_jobs(session, IDLE_S, now, 100)
        seal_idle(session, job_id, IDLE_S, now)
    with session_scope(session_factory) as session:
        assert session.get_one(Job, job_id).status == JobStatus.CANCELLED
