"""The reconciler's split of stale images: re-send, or fail after max_attempts (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.models import AuditEvent, Image, ImageStatus, Job, JobStatus, utcnow
from db.session import session_scope
from workers.tasks.reconcile import claim_stale, fail_exhausted

Factory = sessionmaker[Session]


def test_stale_images_are_resent_until_max_attempts_then_failed(
    migrated_settings: Settings, session_factory: Factory, make_job: Callable[..., Any]
) -> None:
    settings = replace(migrated_settings, max_attempts=3, pending_timeout_s=60)
    job, images = make_job(3)
    long_ago = utcnow() - timedelta(minutes=10)
    with session_scope(session_factory) as session:
        # Image 0 was sent 3 times already, image 1 twice, image 2 once.
        for image, attempts in zip(images, (3, 2, 1), strict=True):
            values = {"attempts": attempts, "enqueued_at": long_ago}
            session.execute(update(Image).where(Image.id == image.id).values(**values))

    resend, exhausted = claim_stale(settings)
    model_ref = f"{job.model_name}:{job.model_version}@{job.model_sha256}"
    # With the attempts they had: image 1, lost twice now, is sent again alone (send_again).
    assert resend == {(job.id, model_ref, False): [(images[1].id, images[1].blob_key, 2),
                                            (images[2].id, images[2].blob_key, 1)]}  # fmt: skip
    assert exhausted == {job.id: [(images[0].id, 3)]}
    assert fail_exhausted(settings, exhausted) == 1
    assert fail_exhausted(settings, exhausted) == 0  # idempotent: the image is no longer pending

    with session_scope(session_factory) as session:
        rows = session.scalars(select(Image).where(Image.job_id == job.id).order_by(Image.position))
        state = [(r.status, r.error_code, r.attempts) for r in rows]
        done = session.get_one(Job, job.id)
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "image.result"))
        audited = [(e.object_id, e.payload["error_code"]) for e in events]
    assert state == [
        (ImageStatus.FAILED, "ATTEMPTS_EXHAUSTED", 3),
        (ImageStatus.PENDING, None, 3),  # sent once more
        (ImageStatus.PENDING, None, 2),
    ]
    assert (done.status, done.failed) == (JobStatus.RUNNING, 1)  # the others are still owed
    assert audited == [(str(images[0].id), "ATTEMPTS_EXHAUSTED")]


def test_a_job_whose_last_images_are_given_up_on_finishes(
    migrated_settings: Settings, session_factory: Factory, make_job: Callable[..., Any]
) -> None:
    settings = replace(migrated_settings, max_attempts=1, pending_timeout_s=60)
    job, _ = make_job(2)
    with session_scope(session_factory) as session:
        long_ago = utcnow() - timedelta(minutes=10)
        session.execute(update(Image).where(Image.job_id == job.id).values(enqueued_at=long_ago))
    resend, exhausted = claim_stale(settings)
    assert resend == {}
    assert fail_exhausted(settings, exhausted) == 2
    with session_scope(session_factory) as session:
        done = session.get_one(Job, job.id)
    assert (done.status, done.failed, done.finished_at is not None) == (JobStatus.FAILED, 2, True)


def test_images_still_in_flight_wait(
    migrated_settings: Settings, session_factory: Factory, make_job: Callable[..., Any]
) -> None:
    # Behind a big job, old images are waiting in line, not lost: no re-send, no attempt used;
    # an image of the same job that no message holds is re-sent.
    settings = replace(migrated_settings, max_attempts=2, pending_timeout_s=60)
    job, images = make_job(2)
    with session_scope(session_factory) as session:
        long_ago = utcnow() - timedelta(minutes=10)
        session.execute(update(Image).where(Image.job_id == job.id).values(enqueued_at=long_ago))
    model_ref = f"{job.model_name}:{job.model_version}@{job.model_sha256}"
    resend, exhausted = claim_stale(settings, {images[0].id})
    assert (resend, exhausted) == (
        {(job.id, model_ref, False): [(images[1].id, images[1].blob_key, 1)]},
        {},
    )
    with session_scope(session_factory) as session:
        rows = session.scalars(select(Image).where(Image.job_id == job.id).order_by(Image.position))
        assert [row.attempts for row in rows] == [1, 2]
