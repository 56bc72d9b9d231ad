"""What the job endpoints share: finding a job the caller may see, its JSON body, and sending
sealed images to the workers once their rows are committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify

from api.auth import Caller
from api.errors import not_found
from api.extensions import services
from api.job_view import job_view
from db.jobs import get_job
from db.models import Job
from workers.enqueue import enqueue_images

log = logging.getLogger(__name__)


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


def model_ref(job: Job) -> str:
    return f"{job.model_name}:{job.model_version}"


def send_images(job_id: str, ref: str, images: Sequence[tuple[int, str]]) -> None:
    """Enqueue images; call only after the commit that created their rows.

    A failure here is logged, not raised: the rows are committed as pending, so the reconciler
    re-queues them after ``pending_timeout_s``, and the job was accepted either way.
    """
    if not images:
        return
    state = services()
    try:
        enqueue_images(state.celery, job_id, ref, images, state.settings.chunk_size)
    except Exception as exc:
        log.warning(
            "job %s: enqueue failed (%s); the reconciler will re-queue its images",
            job_id,
            type(exc).__name__,
        )


def pairs(images: Sequence[Any]) -> list[tuple[int, str]]:
    """(image id, blob key) of each image: all a task needs, read inside the transaction."""
    return [(image.id, image.blob_key) for image in images]
