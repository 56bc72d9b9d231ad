"""What the job endpoints share: finding a job the caller may see, and its JSON body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify

from api.auth import Caller
from api.errors import not_found
from api.job_view import job_view
from db.jobs import get_job
from db.models import Job


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


def job_body(job: Job, **extra: Any) -> dict[str, Any]:
    return {"id": job.id, "url": job_url(job.id), **job_view(job, datetime.now(UTC)), **extra}


def job_response(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Location"] = body["url"]
    return response
