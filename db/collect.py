"""What the collector writes: results, job progress, and the reconciler's view of stale work.

Results arrive at least once (Celery acks late, the reconciler re-queues, Redis may redeliver),
so every write is conditional on the image still being PENDING: a duplicate delivery or a
second collector changes nothing and counts nothing. The job row is locked first, in the same
order as db/jobs.py (job, then images), so a cancel and a collect never deadlock.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, contains_eager

from db.audit import NewEvent, append_events
from db.job_close import close_if_done
from db.model_queue import mark_done
from db.models import Image, ImageStatus, Job, JobStatus, utcnow
from messages.scored_image import ScoredImage
from pipeline.errors import ErrorCode
from pipeline.result import OK

COLLECTOR = "service:collector"
EXHAUSTED = ErrorCode.ATTEMPTS_EXHAUSTED.value
# Images are sent as soon as they are added, so an open job's results count as much as a
# sealed one's; only a final job (finished or cancelled) takes nothing more.
LIVE = (JobStatus.OPEN, JobStatus.QUEUED, JobStatus.RUNNING)


def record_results(session: Session, job_id: str, results: Iterable[ScoredImage]) -> int:
    """Write the results of images still pending; returns how many were written.

    A chunk costs a fixed handful of statements whatever its size: lock the job, lock its
    images still pending, one bulk UPDATE, one append of all their audit events.
    """
    query = select(Job).where(Job.id == job_id).with_for_update()
    job = session.scalars(query.execution_options(populate_existing=True)).one_or_none()
    # Unknown, cancelled or finished: nothing to write (a late result of a cancel).
    if job is None or job.status not in LIVE:
        return 0
    items = list(results)
    pending = _lock_pending(session, job.id, [result.image_id for result in items])
    now = utcnow()
    written = {ImageStatus.SUCCEEDED: 0, ImageStatus.FAILED: 0}
    rows, events = [], []
    for result in items:
        image_id = result.image_id
        blob_key = pending.pop(image_id, None)  # popped: a repeated id is written once
        if blob_key is None:
            continue  # already written (duplicate delivery), cancelled, or not in this job
        values = _result_values(result)
        rows.append({"id": image_id, "completed_at": now, **values})
        events.append(_result_event(job, image_id, result.input_sha256 or blob_key, values))
        written[values["status"]] += 1
    if rows:
        _update_by_id(session, rows)
        append_events(session, events)
        # After the audit chain's lock, as in every transaction that takes both (no deadlock).
        mark_done(session, job.model_name, job.lane, len(rows), now)
        _advance(session, job, written, now)
    return len(rows)


def _update_by_id(session: Session, rows: list[dict[str, Any]]) -> None:
    # One executemany per set of columns (a success sets more than a failure): the ORM starts a
    # new one whenever the keys change from one row to the next.
    for status in (ImageStatus.SUCCEEDED, ImageStatus.FAILED):
        group = [row for row in rows if row["status"] == status]
        if group:
            session.execute(update(Image), group, execution_options={"synchronize_session": False})


def _lock_pending(session: Session, job_id: str, image_ids: list[int]) -> dict[int, str]:
    """``{image_id: blob_key}`` of those images of the job still pending, locked until commit."""
    query = (
        select(Image.id, Image.blob_key)
        .where(
            Image.id.in_(image_ids),
            Image.job_id == job_id,
            Image.status == ImageStatus.PENDING,
        )
        .with_for_update()
    )
    return {row.id: row.blob_key for row in session.execute(query)}


def _result_event(job: Job, image_id: int, input_sha256: str, values: dict[str, Any]) -> NewEvent:
    status: ImageStatus = values["status"]
    return NewEvent(
        actor=COLLECTOR,
        action="image.result",
        object_type="image",
        object_id=str(image_id),
        payload={
            "image_id": image_id,
            "job_id": job.id,
            "input_sha256": input_sha256,
            "model_sha256": job.model_sha256,
            "status": status.value,
            "error_code": values["error_code"],
            "output_digest": output_digest(values["scores"]),
        },
    )


def _result_values(result: ScoredImage) -> dict[str, Any]:
    ok = result.status == OK
    scores = dict(result.scores) if ok else None
    if scores is not None and not all(math.isfinite(v) for v in scores.values()):
        # NaN/inf is not JSON (Postgres refuses it): one bad output must not poison the batch.
        return _failure("INFERENCE_FAILED", "the model produced a non-finite score")
    if not ok:
        return _failure(result.error_code or "INTERNAL_ERROR", result.error_message)
    return {
        "status": ImageStatus.SUCCEEDED,
        "error_code": None,
        "error_message": None,
        "scores": scores,
        "positive": list(result.positive),
        "format": result.format,
        "width": result.width,
        "height": result.height,
        "timings_ms": dict(result.timings_ms),
        "facts": dict(result.facts),
    }


def _failure(code: str, message: str | None) -> dict[str, Any]:
    return {
        "status": ImageStatus.FAILED,
        "error_code": code[:64],
        "error_message": message,
        "scores": None,
    }


def output_digest(scores: dict[str, float] | None) -> str | None:
    """sha256 of the scores as canonical JSON (sorted keys, compact, shortest float repr).

    Recomputable from the stored row, so the audit chain vouches for the scores it does not
    carry. (db.audit.canonical_json refuses floats, hence this form.)
    """
    if scores is None:
        return None
    text = json.dumps(scores, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _advance(session: Session, job: Job, written: dict[ImageStatus, int], now: datetime) -> None:
    job.succeeded += written[ImageStatus.SUCCEEDED]
    job.failed += written[ImageStatus.FAILED]
    if job.started_at is None:
        job.started_at = now
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.RUNNING  # an open job stays open until its owner seals it
    session.flush()
    close_if_done(session, job, now, COLLECTOR)


def stale_pending(
    session: Session, older_than_s: float, limit: int, skip_models: Collection[str] = ()
) -> list[Image]:
    """Pending images of live jobs, open or sealed, sent over ``older_than_s`` ago; oldest first.

    Images of ``skip_models`` are left out. Each image comes with its job loaded
    (``image.job``) for the model to re-queue to.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    query = (
        select(Image)
        .join(Image.job)
        .options(contains_eager(Image.job))
        .where(
            Image.status == ImageStatus.PENDING,
            Job.status.in_(LIVE),
            Image.enqueued_at < cutoff,
        )
        .order_by(Image.enqueued_at, Image.id)
        .limit(limit)
    )
    if skip_models:
        query = query.where(Job.model_name.not_in(list(skip_models)))
    return list(session.scalars(query))


def give_up(session: Session, job_id: str, images: Sequence[tuple[int, int]]) -> int:
    """Fail ``(image_id, attempts)`` images that no send has answered; returns how many.

    Through record_results, like any result: only still-pending images change, counters and
    the job's status follow, and each failure is in the audit chain.
    """
    results = [
        ScoredImage.failure(image_id, EXHAUSTED, _gave_up(sent)) for image_id, sent in images
    ]
    return record_results(session, job_id, results)


def _gave_up(attempts: int) -> str:
    return f"no result after {attempts} attempts; the image may crash the worker"


def mark_enqueued(session: Session, image_ids: Sequence[int]) -> int:
    """Record a re-send: one more attempt, sent now. Images written meanwhile are left alone."""
    if not image_ids:
        return 0
    result: Any = session.execute(
        update(Image)
        .where(Image.id.in_(list(image_ids)), Image.status == ImageStatus.PENDING)
        .values(attempts=Image.attempts + 1, enqueued_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)
