"""What the job endpoints share: finding a job the caller may see, and its JSON body."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify
from sqlalchemy import select

from api.auth import Caller
from api.errors import not_found
from api.job_view import job_view
from db.jobs import get_job
from db.models import Job, ModelQueue


def visible_job(session: Any, job_id: str, who: Caller) -> Job:
    """The job, if this caller may see it; 404 otherwise.

    Another submitter's job is "not found", not "forbidden": a 403 would confirm that the id
    exists, and job ids must not be probeable across tenants.
    """
    job = get_job(session, job_id)
    if job is None or not (who.sees_all_jobs() or job.owner_key_id == who.id):
        raise not_found("job")
    return job


def job_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def job_body(job: Job, queue: ModelQueue | None = None, **extra: Any) -> dict[str, Any]:
    """``queue``: the job's model row (db.model_queue), for the ETA."""
    view = job_view(job, datetime.now(UTC), queue)
    return {"id": job.id, "url": job_url(job.id), **view, **extra}


def job_with_queue(session: Any, job_id: str, who: Caller) -> tuple[Job, ModelQueue | None]:
    """The job (as ``visible_job``) and its model's queue row, in one statement (a poll)."""
    query = (
        select(Job, ModelQueue)
        .outerjoin(ModelQueue, ModelQueue.model_name == Job.model_name)
        .where(Job.id == job_id)
    )
    found = session.execute(query).first()
    if found is None or not (who.sees_all_jobs() or found[0].owner_key_id == who.id):
        raise not_found("job")
    return found[0], found[1]


def queue_rows(session: Any, jobs: Sequence[Job]) -> dict[str, ModelQueue]:
    names = {job.model_name for job in jobs if not job.status.is_final}
    if not names:
        return {}
    rows = session.scalars(select(ModelQueue).where(ModelQueue.model_name.in_(names)))
    return {row.model_name: row for row in rows}


def job_response(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Location"] = body["url"]
    return response
