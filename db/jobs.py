"""The life of a job as the API drives it: open, add images, seal, cancel, read.

Each function runs inside the caller's ``session_scope`` and appends its audit event to the
same transaction, so an event exists if and only if the change does. Job rows are locked
(``FOR UPDATE`` on Postgres; SQLite's IMMEDIATE transactions already serialise writers) before
they change, always job first, then its images: the collector takes them in the same order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.audit import append_event
from db.idempotency import check_same_request
from db.job_close import close_if_done, record_job_finished
from db.model_queue import admit, mark_done
from db.models import ApiKey, Image, ImageStatus, Job, JobStatus, Lane, ModelVersion, utcnow
from storage.blobstore import BlobInfo


class JobStateError(Exception):
    """The job is not in a state that allows this; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Owner(Protocol):
    """Who submits: an ApiKey row, or the API's authenticated caller (no second read of it)."""

    @property
    def id(self) -> int: ...


def owner_actor(job: Job) -> str:
    return f"key:{job.owner_key_id}"


def _actor(actor: str | ApiKey) -> str:
    return actor if isinstance(actor, str) else f"key:{actor.id}"


def _lock(session: Session, job: Job, new: bool = False) -> Job:
    """This session's instance of the job, re-read under a row lock.

    The status checked afterwards is then the one this transaction commits on. A job loaded
    by another (closed) session is fine too: the row is what counts, never a stale copy.
    A ``new`` job, opened in this transaction, is returned as it is: no other transaction
    can see its row before the commit, so this session's instance is the row.
    """
    if new:
        return job
    locked = session.get(Job, job.id, with_for_update=True, populate_existing=True)
    if locked is None:
        raise JobStateError("JOB_NOT_FOUND", "no such job")
    return locked


def open_job(
    session: Session,
    owner: Owner,
    model: ModelVersion,
    idempotency_key: str | None,
    request_digest: str | None = None,
    *,
    lane: Lane = Lane.BATCH,
    deadline_at: datetime | None = None,
) -> tuple[Job, bool]:
    """A new OPEN job, or (with a key) the owner's existing job for that key, created=False.

    ``idempotency_key`` is stored as given: the API passes ``db.idempotency.key_hash`` of the
    client's key. With ``request_digest``, an existing job submitted by another request raises
    ``IdempotencyKeyReused``.
    """
    if idempotency_key is not None:
        existing = _by_idempotency_key(session, owner.id, idempotency_key)
        if existing is not None:
            check_same_request(session, existing, request_digest)
            return existing, False
    job = Job(
        id=uuid.uuid4().hex,
        owner_key_id=owner.id,
        idempotency_key=idempotency_key,
        model_name=model.name,
        model_version=model.version,
        model_sha256=model.sha256,
        status=JobStatus.OPEN,
        total=0,
        succeeded=0,
        failed=0,
        cancelled=0,
        created_at=utcnow(),
        lane=lane,
        deadline_at=deadline_at,
    )
    try:
        # A concurrent request with the same key may commit first: the unique constraint
        # refuses ours, the savepoint keeps the transaction usable, and we return theirs.
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        if idempotency_key is None:
            raise
        existing = _by_idempotency_key(session, owner.id, idempotency_key)
        if existing is None:
            raise
        check_same_request(session, existing, request_digest)
        return existing, False
    append_event(
        session,
        actor=owner_actor(job),
        action="job.submitted",
        object_type="job",
        object_id=job.id,
        payload=_submitted(model, lane, deadline_at, request_digest),
    )
    return job, True


def _submitted(
    model: ModelVersion, lane: Lane, deadline_at: datetime | None, request_digest: str | None
) -> dict[str, Any]:
    payload = {"model": model.name, "version": model.version, "model_sha256": model.sha256}
    if request_digest:  # what a reused Idempotency-Key is compared against (db/idempotency.py)
        payload["request_digest"] = request_digest
    if lane != Lane.BATCH:  # batch events keep their old shape
        payload["lane"] = lane.value
    if deadline_at is not None:
        payload["deadline_at"] = deadline_at.isoformat()
    return payload


def _by_idempotency_key(session: Session, owner_id: int, key: str) -> Job | None:
    query = select(Job).where(Job.owner_key_id == owner_id, Job.idempotency_key == key)
    return session.scalars(query).one_or_none()


def add_images(
    session: Session,
    job: Job,
    items: list[tuple[str, BlobInfo]],
    *,
    queue_cap: int | None = None,
    new: bool = False,
) -> list[Image]:
    """Append PENDING images to an OPEN job, numbered on from the job's current total.

    They are recorded as sent (attempt 1, now): the caller enqueues them right after commit,
    so a big job is processed while the rest of it uploads. If that send is lost, the
    reconciler finds them by ``enqueued_at`` like any other stale image. They are admitted to
    the model's lane first: ``db.model_queue.QueueFull`` when that would exceed ``queue_cap``.
    ``new``: the job was opened in this transaction (``_lock``).
    """
    job = _lock(session, job, new)
    if job.status != JobStatus.OPEN:
        raise JobStateError("JOB_NOT_OPEN", f"job is {job.status.value}; images can't be added")
    now = utcnow()
    images = [
        Image(
            job_id=job.id,
            position=job.total + offset,
            ref=ref,
            blob_key=blob.key,
            size_bytes=blob.size,
            status=ImageStatus.PENDING,
            attempts=1,
            enqueued_at=now,
        )
        for offset, (ref, blob) in enumerate(items)
    ]
    session.add_all(images)
    job.total += len(images)
    job.received_at = now
    session.flush()
    # The count only: refs may carry PHI.
    _event(session, job, "job.images_added", {"count": len(images)})
    # After the audit chain's lock (taken by the event), as in every transaction taking both.
    if images:
        job.queue_end = admit(session, job.model_name, job.lane, len(images), queue_cap)
    return images


def seal_job(
    session: Session,
    job: Job,
    actor: str | None = None,
    reason: str | None = None,
    *,
    new: bool = False,
) -> list[Image]:
    """OPEN -> QUEUED (or RUNNING, or final); returns images still to enqueue after commit.

    Images were sent as they were added, so that list is normally empty; it holds only rows
    that were never sent (added by an older version that enqueued at seal), and a ``new`` job
    (opened in this transaction, ``_lock``) has none, so they are not looked for. A job whose
    images all finished before the seal closes here: no later result would close it. ``actor``
    and ``reason`` name a seal not made by the owner (db.job_expiry: an abandoned upload).
    """
    job = _lock(session, job, new)
    if job.status != JobStatus.OPEN:
        raise JobStateError("JOB_NOT_OPEN", f"job is {job.status.value}; it can't be sealed")
    if job.total == 0:
        raise JobStateError("JOB_EMPTY", "a job needs at least one image")
    now = utcnow()
    job.sealed_at = now
    job.status = JobStatus.QUEUED if job.started_at is None else JobStatus.RUNNING
    unsent = select(Image).where(Image.job_id == job.id, Image.enqueued_at.is_(None))
    to_send = [] if new else list(session.scalars(unsent.order_by(Image.position)))
    for image in to_send:
        image.enqueued_at, image.attempts = now, 1
    session.flush()
    payload: dict[str, Any] = {"count": job.total}
    if reason is not None:
        payload["reason"] = reason
    _event(session, job, "job.sealed", payload, actor)
    close_if_done(session, job, now, actor or owner_actor(job))
    return to_send


def cancel_job(session: Session, job: Job, actor: str | ApiKey) -> Job:
    """Cancel every image still pending; results that arrive later are ignored."""
    job = _lock(session, job)
    if job.status.is_final:
        raise JobStateError("JOB_ALREADY_FINISHED", f"job is already {job.status.value}")
    now = utcnow()
    result: Any = session.execute(
        update(Image)
        .where(Image.job_id == job.id, Image.status == ImageStatus.PENDING)
        .values(status=ImageStatus.CANCELLED, completed_at=now),
        execution_options={"synchronize_session": False},
    )
    job.cancelled += result.rowcount
    job.status, job.finished_at = JobStatus.CANCELLED, now
    session.flush()
    payload = {"cancelled": job.cancelled, "succeeded": job.succeeded, "failed": job.failed}
    append_event(
        session,
        actor=_actor(actor),
        action="job.cancelled",
        object_type="job",
        object_id=job.id,
        payload=payload,
    )
    mark_done(session, job.model_name, job.lane, result.rowcount, now)  # after the chain's lock
    record_job_finished(session, job)
    return job


def _event(
    session: Session, job: Job, action: str, payload: dict[str, Any], actor: str | None = None
) -> None:
    append_event(
        session,
        actor=actor or owner_actor(job),
        action=action,
        object_type="job",
        object_id=job.id,
        payload=payload,
    )


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def list_jobs(
    session: Session, owner_id: int | None, limit: int, before: str | None = None
) -> list[Job]:
    """Newest first; ``before`` is the id of the last job of the previous page (keyset)."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if owner_id is not None:
        query = query.where(Job.owner_key_id == owner_id)
    if before is not None:
        cursor = session.get(Job, before)
        # Another owner's job is no cursor: an empty page either way, so a page never tells
        # whether someone else's job id exists (issue 9).
        if cursor is None or (owner_id is not None and cursor.owner_key_id != owner_id):
            return []
        query = query.where(
            or_(
                Job.created_at < cursor.created_at,
                and_(Job.created_at == cursor.created_at, Job.id < cursor.id),
            )
        )
    return list(session.scalars(query))


def results_page(
    session: Session, job: Job, limit: int, after_position: int | None = None
) -> list[Image]:
    """Images in submission order, keyset-paginated by position (stable under new results)."""
    query = select(Image).where(Image.job_id == job.id).order_by(Image.position).limit(limit)
    if after_position is not None:
        query = query.where(Image.position > after_position)
    return list(session.scalars(query))
