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
from db.jobs import Owner
from db.model_registry import find_model
from db.models import ApiKey, Image, Job, Lane, ModelVersion
from intake.blobs import Stored, import_one, put_file
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
        """Store ``(ref, stream)`` files in one batch; a stream that is a ``Spool`` of the
        store (an upload received by the API) is hashed already, and storing it is a rename."""
        limit = self.settings.limits.max_bytes
        with self.blobs.batch() as batch:
            return [(ref, put_file(batch, i, f, limit)) for i, (ref, f) in enumerate(files)]

    def import_uris(self, uris: Sequence[tuple[str, str]]) -> Stored:
        """Import ``(uri, ref)`` pairs (``s3://``, or ``file://`` under the import roots)."""
        with self.blobs.batch() as batch:
            return [
                (ref, import_one(batch, i, u, self.settings)) for i, (u, ref) in enumerate(uris)
            ]

    # -- rows (inside the caller's session_scope; sends after its commit) --------------------

    def open_job(
        self,
        session: Session,
        owner: Owner,
        model: str | ModelVersion,
        idempotency_key: str | None = None,
        request_digest: str | None = None,
        *,
        lane: Lane = Lane.BATCH,
        deadline_at: datetime | None = None,
    ) -> tuple[Job, bool]:
        """A new OPEN job for ``model`` ("name" or "name:version", or the row a caller found
        already), or, with a key already used by ``owner``, that job (``created`` False;
        another ``request_digest`` than the one it was opened with raises
        ``db.idempotency.IdempotencyKeyReused``). ``lane``: interactive jobs go to the model's
        priority queue."""
        found = model if isinstance(model, ModelVersion) else find_model(session, model)
        return jobs.open_job(
            session,
            owner,
            found,
            idempotency_key,
            request_digest,
            lane=lane,
            deadline_at=deadline_at,
        )

    def add_blobs(
        self,
        session: Session,
        job: Job,
        items: Sequence[tuple[str, BlobInfo]],
        *,
        new: bool = False,
    ) -> list[Image]:
        """Add ``(ref, BlobInfo)`` images to an open job; they are sent when the session commits
        (processing overlaps the rest of the upload). Raises ``db.model_queue.QueueFull`` past
        the cap of the job's lane (settings ``queue_cap``, ``interactive_queue_cap``).
        ``new``: opened in this transaction."""
        images = jobs.add_images(session, job, list(items), queue_cap=self._cap(job), new=new)
        self._send_after_commit(session, job, images)
        return images

    def seal(self, session: Session, job: Job, *, new: bool = False) -> Job:
        """No more images will come: the job may finish (at once, if nothing is pending).
        ``new``: opened in this transaction (nothing to lock, no unsent image to look for)."""
        self._send_after_commit(session, job, jobs.seal_job(session, job, new=new))
        return job

    def submit(
        self,
        session: Session,
        owner: Owner,
        model: str | ModelVersion,
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
            model,
            idempotency_key,
            request_digest,
            lane=lane,
            deadline_at=deadline_at,
        )
        if created:  # opened by this transaction: its row is ours alone until the commit
            self.add_blobs(session, job, items, new=True)
            if seal:
                self.seal(session, job, new=True)
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
        if not images:
            return  # a seal usually has nothing left to send
        pairs = [(image.id, image.blob_key) for image in images]
        interactive = job.lane == Lane.INTERACTIVE
        size = self.settings.chunk_size
        enqueue_after_commit(
            session, self.celery, job.id, job.model_ref, pairs, size, interactive=interactive
        )
