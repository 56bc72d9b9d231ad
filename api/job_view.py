"""The body of ``GET /v1/jobs/<id>``: a job's status, counts, progress and timing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from api.serialize import timestamp
from db.model_queue import outlook
from db.models import Job, JobStatus, ModelQueue


def job_view(job: Job, now: datetime, queue: ModelQueue | None = None) -> dict[str, Any]:
    """The body of ``GET /v1/jobs/<id>``: status, counts, progress and timing.

    ``queue``: the model's row, for the ETA (none given: no ETA).
    """
    processed = job.succeeded + job.failed
    done = job.total - job.pending  # cancelled images are done too: nothing left to wait for
    throughput = _throughput(job, processed, now)
    running = job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    return {
        "id": job.id,
        "status": job.status.value,
        "model": {"name": job.model_name, "version": job.model_version, "sha256": job.model_sha256},
        "counts": {
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "pending": job.pending,
            "cancelled": job.cancelled,
        },
        "progress": round(done / job.total, 4) if job.total else 0.0,
        "created_at": timestamp(job.created_at),
        "sealed_at": timestamp(job.sealed_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "throughput_per_s": throughput,
        "eta_s": round(job.pending / throughput, 1) if running and throughput else None,
        "lane": job.lane.value,
        "deadline_at": timestamp(job.deadline_at),
        "eta": _eta(job, queue, now),
    }


def _eta(job: Job, queue: ModelQueue | None, now: datetime) -> dict[str, Any] | None:
    """When the job should finish, from its model's queue ahead of it and measured rate."""
    if job.status.is_final or queue is None:
        return None
    seen = outlook(job, queue)
    seconds = seen.eta_s
    at = None if seconds is None else timestamp(now + timedelta(seconds=seconds))
    return {"at": at, "seconds": seconds, "basis": {**seen.basis(), "images_left": job.pending}}


def _throughput(job: Job, processed: int, now: datetime) -> float | None:
    if job.started_at is None or processed == 0:
        return None
    elapsed = ((job.finished_at or now) - job.started_at).total_seconds()
    # The first result alone gives no rate: started_at is that result's own time.
    return round(processed / elapsed, 3) if elapsed > 0 else None
