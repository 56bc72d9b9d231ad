"""The intake service: what every entry point calls to turn received images into a running job.

Two phases, in this order. First store the blobs, with no transaction open (``store_files``,
``import_uris``; or skip this when the blobs are stored already). Then, inside ONE
``db.session.session_scope`` of the caller, write the rows: ``open_job`` (or ``submit`` for all
three steps at once), ``add_blobs``, ``seal``, ``cancel``. Each asks for its sends (the infer
tasks, the cancel flag) to happen after that transaction commits, and never if it rolls back:
callers send nothing themselves. A DICOM receiver, for example::

    stored = intake.store_files([(ref, stream), ...])
    with session_scope(factory) as session:
        job, _ = intake.open_job(session, owner, "nodule-detector")
        intake.add_blobs(session, job, stored)
        intake.seal(session, job)

Errors: ``intake.errors.IntakeRefused`` (a file too large, a URI not imported),
``db.model_registry.ModelNotFound``, ``db.jobs.JobStateError`` (e.g. JOB_NOT_OPEN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from celery import Celery
from sqlalchemy.orm import Session

from config.settings import Settings
from db import jobs
from db.model_registry import find_model
from db.models import ApiKey, Image, Job, Lane
from intake import blobs as blob_intake
from intake.blobs import Stored
from intake.cancel_flag import set_cancel_flag_after_commit
from storage.blobstore import BlobInfo, BlobStore, Spool
from workers.enqueue_on_commit import enqueue_after_commit


@dataclass(frozen=True)
class Intake:
    """One per process (the API builds one in ``api.extensions``): the settings, the blob store,
    the Celery app that sends and the Redis client of the cancel flags."""

    settings: Settings
    blobs: BlobStore
    celery: Celery
    redis: Any  # redis.Redis

    # -- blobs (before the transaction) ------------------------------------------------------

    def new_spool(self) -> Spool:
        """A spool for one upload as it arrives (bytes past the image size limit are dropped;
        storing it then raises FileTooLarge)."""
        return self.blobs.spool(self.settings.limits.max_bytes)

    def store_files(self, files: Sequence[tuple[str, IO[bytes]]]) -> Stored:
        return blob_intake.store_files(self.blobs, files, self.settings.limits.max_bytes)

    def import_uris(self, uris: Sequence[tuple[str, str]]) -> Stored:
        return blob_intake.import_uris(self.blobs, uris, self.settings)

    # -- rows (inside the caller's session_scope; sends after its commit) --------------------

    def open_job(
        self,
        session: Session,
        owner: ApiKey,
        model_ref: str,
        idempotency_key: str | None = None,
        request_digest: str | None = None,
        *,
        lane: Lane = Lane.BATCH,
        deadline_at: datetime | None = None,
    ) -> tuple[Job, bool]:
        """A new OPEN job for ``model_ref`` ("name" or "name:version"), or, with a key already
        used by ``owner``, that job (``created`` False; another ``request_digest`` than the
        one it was opened with raises ``db.idempotency.IdempotencyKeyReused``). ``lane``:
        interactive jobs go to the model's priority queue."""
        model = find_model(session, model_ref)
        return jobs.open_job(
            session,
            owner,
            model,
            idempotency_key,
            request_digest,
            lane=lane,
            deadline_at=deadline_at,
        )

    def add_blobs(
        self, session: Session, job: Job, items: Sequence[tuple[str, BlobInfo]]
    ) -> list[Image]:
        """Add ``(ref, BlobInfo)`` images to an open job; they are sent when the session commits
        (processing overlaps the rest of the upload). Raises ``db.model_queue.QueueFull`` past
        the cap of the job's lane (settings ``queue_cap``, ``interactive_queue_cap``)."""
        images = jobs.add_images(session, job, list(items), queue_cap=self._cap(job))
        self._send_after_commit(session, job, images)
        return images

    def seal(self, session: Session, job: Job) -> Job:
        """No more images will come: the job may finish (at once, if nothing is pending)."""
        self._send_after_commit(session, job, jobs.seal_job(session, job))
        return job

    def submit(
        self,
        session: Session,
        owner: ApiKey,
        model_ref: str,
        items: Sequence[tuple[str, BlobInfo]],
        *,
        seal: bool = True,
        idempotency_key: str | None = None,
        request_digest: str | None = None,
        lane: Lane = Lane.BATCH,
        deadline_at: datetime | None = None,
    ) -> tuple[Job, bool]:
        """Open, fill and (unless ``seal`` is False) seal a job in one go; a replayed
        ``idempotency_key`` returns the existing job untouched (``created`` False)."""
        job, created = self.open_job(
            session,
            owner,
            model_ref,
            idempotency_key,
            request_digest,
            lane=lane,
            deadline_at=deadline_at,
        )
        if created:
            self.add_blobs(session, job, items)
            if seal:
                self.seal(session, job)
        return job, created

    def cancel(self, session: Session, job: Job, actor: str | ApiKey) -> Job:
        """Cancel the job's pending images; workers learn it from a flag set after commit."""
        job = jobs.cancel_job(session, job, actor)
        set_cancel_flag_after_commit(session, self.redis, job.id)
        return job

    def _cap(self, job: Job) -> int:
        interactive = job.lane == Lane.INTERACTIVE
        return self.settings.interactive_queue_cap if interactive else self.settings.queue_cap

    def _send_after_commit(self, session: Session, job: Job, images: Sequence[Image]) -> None:
        pairs = [(image.id, image.blob_key) for image in images]
        interactive = job.lane == Lane.INTERACTIVE
        size = self.settings.chunk_size
        enqueue_after_commit(
            session, self.celery, job.id, job.model_ref, pairs, size, interactive=interactive
        )
