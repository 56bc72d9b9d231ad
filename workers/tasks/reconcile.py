"""``medflow.reconcile`` (beat, in the collector): re-queue images pending for too long.

Redis may lose its queues (it keeps nothing on disk by default); Postgres knows which images
still wait, so their chunks are rebuilt from the rows; an image sent ``max_attempts`` times
without an answer fails with ATTEMPTS_EXHAUSTED instead. Logs counts only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection

from celery import Celery, Task, shared_task

from config.settings import Settings
from workers import db_sessions, resources
from workers.app import settings_of
from workers.enqueue_on_commit import enqueue_after_commit
from workers.queues import INFER_PREFIX

log = logging.getLogger(__name__)

# Bounds one run's transaction and burst of messages; the next run takes the rest.
RECONCILE_BATCH = 2000
# Upload spools older than this belong to a crashed request (the longest upload allowed,
# 512 MB, takes minutes even at 2 MB/s).
SPOOL_MAX_AGE_S = 3600

Chunks = dict[tuple[str, str], list[tuple[int, str]]]  # (job_id, model_ref) -> [(id, key)]
Exhausted = dict[str, list[tuple[int, int]]]  # job_id -> [(image id, attempts)]


@shared_task(name="medflow.reconcile", bind=True, ignore_result=True, acks_late=True)
def reconcile(self: Task) -> int:
    settings = settings_of(self.app)
    stale, exhausted = claim_stale(settings, queued_models(settings), self.app)
    failed = fail_exhausted(settings, exhausted)
    swept = resources.blob_store(settings).sweep_spools(SPOOL_MAX_AGE_S)
    count = sum(len(images) for images in stale.values())
    if count:
        log.warning("reconcile: re-queued %d stale images of %d jobs", count, len(stale))
    if failed:
        log.warning("reconcile: failed %d images after %d attempts", failed, settings.max_attempts)
    if swept:
        log.warning("reconcile: removed %d upload spools left by a crashed request", swept)
    return count


def queued_models(settings: Settings) -> set[str]:
    """Models whose inference queue still holds chunks.

    Their old pending images are most likely waiting in line behind a big job, not lost: a
    re-send would only duplicate work (and count an attempt against them). Their queue
    drains in time; what is still pending then was lost, and is re-sent.
    """
    client = resources.redis_client(settings.redis_url)
    found = set()
    # kombu keeps a queue as a Redis list named after it (a key exists only while non-empty).
    for key in client.scan_iter(match=f"{INFER_PREFIX}*", count=100):
        if client.type(key) == b"list":
            found.add(key.decode().removeprefix(INFER_PREFIX).split("\x06")[0])
    return found


def claim_stale(
    settings: Settings, skip_models: Collection[str] = (), celery: Celery | None = None
) -> tuple[Chunks, Exhausted]:
    """Split the stale images: those to send again (marked enqueued, in one transaction, and
    sent through ``celery`` when it commits) and those sent ``max_attempts`` times already, to
    fail. Models in ``skip_models`` wait."""
    from db.collect import mark_enqueued, stale_pending
    from db.session import session_scope

    by_job: Chunks = defaultdict(list)
    exhausted: Exhausted = defaultdict(list)
    with session_scope(db_sessions.session_factory(settings)) as session:
        images = stale_pending(session, settings.pending_timeout_s, RECONCILE_BATCH, skip_models)
        again = []
        for image in images:
            if image.attempts >= settings.max_attempts:
                exhausted[image.job_id].append((image.id, image.attempts))
                continue
            again.append(image.id)
            by_job[(image.job_id, image.job.model_ref)].append((image.id, image.blob_key))
        mark_enqueued(session, again)
        for (job_id, model_ref), pairs in by_job.items():
            if celery is not None:
                enqueue_after_commit(session, celery, job_id, model_ref, pairs, settings.chunk_size)
    return dict(by_job), dict(exhausted)


def fail_exhausted(settings: Settings, exhausted: Exhausted) -> int:
    """One transaction per job, each locking only its own job (the collector's lock order)."""
    from db.collect import give_up
    from db.session import session_scope

    failed = 0
    for job_id, images in exhausted.items():
        with session_scope(db_sessions.session_factory(settings)) as session:
            failed += give_up(session, job_id, images)
    return failed
