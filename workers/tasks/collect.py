"""``medflow.collect``: write a chunk's results to the database (the collector's only job).

The collector is the single writer of results; record_results is idempotent (only pending
images change), so a redelivered or duplicated message is harmless. A message whose MAC does
not check (messages/signing.py) is refused before anything is written.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from celery import Task, shared_task
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from messages.chunk_results import ChunkResults
from messages.scored_image import ScoredImage
from workers import db_sessions, metrics, resources
from workers.app import settings_of
from workers.chunk_ledger import mark_final
from workers.finished import announce_finished
from workers.queues import RESULTS_QUEUE
from workers.refusals import authentic_chunk, count_refusal
from workers.tasks.anchor import ANCHOR_TASK

log = logging.getLogger(__name__)


@shared_task(
    name="medflow.collect",
    bind=True,
    ignore_result=True,
    acks_late=True,
    # A database restart or a lock timeout is transient: retry with growing, jittered delays
    # instead of losing the chunk. Any other error is a bug and fails loudly in Flower. Delays
    # stop growing at 30 s, so results are written within 30 s of Postgres coming back (at 300 s
    # a 30 s outage held some for minutes); 120 tries still wait out about half an hour.
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=120,
)
def collect(self: Task, message: dict[str, Any]) -> int:
    from db.collect import record_results
    from db.models import Job
    from db.session import session_scope

    settings = settings_of(self.app)
    chunk, refused = authentic_chunk(message, settings.results_key)
    if chunk is None:
        count_refusal(resources.redis_client(settings.redis_url), str(refused))
        return 0
    # The engine is created here, lazily, in the pool process (after the fork).
    with session_scope(db_sessions.session_factory(settings)) as session:
        # Read once and held: record_results refreshes this same instance under its lock, and
        # whether the chunk closed the job is read from it afterwards.
        job = session.get(Job, chunk.job_id)
        owner = job.owner_key_id if job is not None else None
        images = owner_pseudonyms(owner, chunk.images, settings.secret_key)
        written = record_results(session, chunk.job_id, images)
        closed = _closed_now(job, written)
    if closed is not None:  # after the commit: a waiter woken now finds the results
        announce(settings, chunk.job_id)
    note_final(settings, chunk)
    _observe(written, closed)
    log.info("collected %d results, %d written", len(chunk.images), written)
    if closed is not None:  # anchor the chain at every job's end, after the commit above
        self.app.send_task(ANCHOR_TASK, queue=RESULTS_QUEUE)
    return written


def note_final(settings: Settings, chunk: ChunkResults) -> None:
    """After the commit, every image of the message is final (written now or before): workers
    skip them in any copy of their chunk still circulating. A hint only, so a Redis error is
    logged and the result stands."""
    image_ids = [image.image_id for image in chunk.images]
    try:
        mark_final(resources.redis_client(settings.redis_url), chunk.job_id, image_ids)
    except RedisError as exc:
        log.warning("could not note final images in Redis: %s", type(exc).__name__)


def owner_pseudonyms(
    owner: int | None, images: tuple[ScoredImage, ...], secret: str
) -> list[ScoredImage]:
    """The images with their pseudonyms re-keyed for the job's owner (privacy/pseudonym.py)."""
    from privacy.pseudonym import for_owner

    if owner is None:
        return list(images)  # an unknown job: record_results writes nothing anyway
    return [replace(i, facts=for_owner(i.facts, secret, owner)) if i.facts else i for i in images]


def job_finished(session: Any, job_id: str) -> bool:
    """Whether the job is final now (the reconciler's give-up path asks after its write)."""
    from db.models import FINAL_JOB_STATUSES, Job

    job = session.get(Job, job_id)
    return job is not None and job.status in FINAL_JOB_STATUSES


def _closed_now(job: Any, written: int) -> tuple[str, float] | None:
    """(model, seconds from creation to close) if this chunk finished the job, else None.

    Results are written only to a job that was not final, so a job final after writing some
    closed in this transaction."""
    if not written:
        return None
    if job is None or not job.status.is_final or job.finished_at is None:
        return None  # a job that was final before took no results, so it closed just now
    return job.model_name, max(0.0, (job.finished_at - job.created_at).total_seconds())


def _observe(written: int, closed: tuple[str, float] | None) -> None:
    # Counted after the commit: a rolled-back transaction wrote nothing.
    metrics.RESULTS_WRITTEN.inc(written)
    metrics.AUDIT_APPENDS.inc(written + (1 if closed is not None else 0))
    if closed is not None:
        metrics.JOB_SECONDS.labels(closed[0]).observe(closed[1])


def announce(settings: Any, job_id: str) -> None:
    try:
        announce_finished(resources.redis_client(settings.redis_url), job_id)
    except Exception as exc:  # the waiter times out into a 202; the job itself is done
        log.warning("job %s: finish not announced (%s)", job_id, type(exc).__name__)
