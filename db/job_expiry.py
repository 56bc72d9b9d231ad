"""Abandoned uploads end: an open job that received nothing for a while is sealed.

A client that dies mid-upload (or never seals) leaves its job open, and an open job never
finishes. Sealing it keeps every image it did receive, in whatever state it is (processed,
pending, failed): they finish as usual and the job closes with them. An empty job is
cancelled instead (a job needs an image to be sealed). Both leave an audit event by the
reconciler, naming the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.jobs import cancel_job, seal_job
from db.models import Image, Job, JobStatus

RECONCILER = "service:reconciler"
IDLE = "idle"


def idle_open_jobs(session: Session, idle_s: float, now: datetime, limit: int) -> list[str]:
    """Ids of open jobs that received nothing for ``idle_s`` (never: since they were opened)."""
    cutoff = now - timedelta(seconds=idle_s)
    last = func.coalesce(Job.received_at, Job.created_at)
    query = select(Job.id).where(Job.status == JobStatus.OPEN, last < cutoff).limit(limit)
    return list(session.scalars(query))


def seal_idle(session: Session, job_id: str, idle_s: float, now: datetime) -> list[Image]:
    """Seal the job if it is still open and idle (checked again under its lock); returns the
    images to enqueue after commit, like seal_job."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.status != JobStatus.OPEN:
        return []
    last = job.received_at or job.created_at
    if last > now - timedelta(seconds=idle_s):
        return []  # images arrived since it was listed
    if job.total == 0:
        cancel_job(session, job, RECONCILER)
        return []
    return seal_job(session, job, actor=RECONCILER, reason=IDLE)
