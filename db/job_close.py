"""Closing a job: the one place that decides a finished job's status and records it.

Two paths reach it. Usually the collector writes a sealed job's last result; but images are
processed while a job is still open, so a job can also have nothing left to wait for at the
moment it is sealed. Both close the job the same way, with the same audit event. Every close
(these two, and a cancel in db/jobs.py) also writes the ``job.finished`` outbox event in the
same transaction, for what must tell the outside world (webhooks, SR delivery).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from db import outbox
from db.audit import append_event
from db.models import Job, JobStatus

JOB_FINISHED = "job.finished"  # the outbox kind


def close_if_done(session: Session, job: Job, now: datetime, actor: str) -> bool:
    """Close a sealed job with no pending image; returns whether it closed.

    An open job never closes here, however many of its images are done: more may come.
    """
    if job.status == JobStatus.OPEN or job.status.is_final or job.pending > 0:
        return False
    job.status = final_status(job)
    job.finished_at = now
    session.flush()
    append_event(
        session,
        actor=actor,
        action="job.finished",
        object_type="job",
        object_id=job.id,
        payload={
            "status": job.status.value,
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "cancelled": job.cancelled,
        },
    )
    record_job_finished(session, job)
    return True


def record_job_finished(session: Session, job: Job) -> None:
    """The ``job.finished`` outbox event of a job just closed: ids and counts, never PHI."""
    finished = job.finished_at.isoformat() if job.finished_at is not None else None
    outbox.add(
        session,
        JOB_FINISHED,
        {
            "job_id": job.id,
            "owner_key_id": job.owner_key_id,
            "status": job.status.value,
            "model": job.model_name,
            "version": job.model_version,
            "model_ref": job.model_ref,
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "cancelled": job.cancelled,
            "finished_at": finished,
        },
    )


def final_status(job: Job) -> JobStatus:
    if job.failed == 0:
        return JobStatus.COMPLETED
    # Cancelled images are not failures: FAILED only when nothing succeeded.
    return JobStatus.FAILED if job.succeeded == 0 else JobStatus.COMPLETED_WITH_ERRORS
