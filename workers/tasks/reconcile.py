"""``medflow.reconcile`` (beat): re-queue pending images that no message holds any more.

Redis may lose its queues (it keeps nothing on disk by default); Postgres knows which images
still wait, so their chunks are rebuilt from the rows. What the broker still holds (queued, or
delivered and not acked: workers.inflight) is in flight and left alone, however long the queue;
a delivery whose worker died is put back at once. An image sent ``max_attempts`` times without
an answer fails with ATTEMPTS_EXHAUSTED instead. Logs counts only.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Collection
from typing import Any

from celery import Celery, Task, shared_task

from config.settings import Settings
from workers import db_sessions, resources
from workers.app import settings_of
from workers.enqueue_on_commit import enqueue_after_commit
from workers.inflight import read_in_flight
from workers.tasks.collect import announce, job_finished

log = logging.getLogger(__name__)

# Bounds one run's transaction and burst of messages; the next run takes the rest.
RECONCILE_BATCH = 2000

# (job_id, model_ref, interactive) -> [(id, key, attempts)]
Chunks = dict[tuple[str, str, bool], list[tuple[int, str, int]]]
Exhausted = dict[str, list[tuple[int, int]]]  # job_id -> [(image id, attempts)]


@shared_task(name="medflow.reconcile", bind=True, ignore_result=True, acks_late=True)
def reconcile(self: Task) -> int:
    settings = settings_of(self.app)
    flight = read_in_flight(
        resources.redis_client(settings.redis_url), time.time(), max_run_s(settings)
    )
    stale, exhausted = claim_stale(settings, flight.image_ids, self.app)
    failed = fail_exhausted(settings, exhausted)
    sealed = seal_idle_jobs(self.app, settings)
    swept = resources.blob_store(settings).sweep_spools(settings.spool_idle_s)
    count = sum(len(images) for images in stale.values())
    if count:
        log.warning("reconcile: re-queued %d stale images of %d jobs", count, len(stale))
    if flight.restored:
        log.warning("reconcile: put back %d chunks taken by a worker that died", flight.restored)
    if failed:
        log.warning("reconcile: failed %d images after %d attempts", failed, settings.max_attempts)
    if swept:
        log.warning("reconcile: removed %d upload spools left by a crashed request", swept)
    if sealed:
        log.warning("reconcile: sealed %d open jobs that received nothing for a while", sealed)
    return count


def seal_idle_jobs(app: Celery, settings: Settings) -> int:
    """Seal open jobs abandoned by their uploader (db.job_expiry), one transaction each."""
    from db.job_expiry import idle_open_jobs, seal_idle
    from db.models import Job, Lane, utcnow
    from db.session import session_scope

    factory, now, idle_s = db_sessions.session_factory(settings), utcnow(), settings.open_job_idle_s
    with session_scope(factory) as session:
        job_ids = idle_open_jobs(session, idle_s, now, RECONCILE_BATCH)
    for job_id in job_ids:
        with session_scope(factory) as session:
            unsent = [
                (image.id, image.blob_key) for image in seal_idle(session, job_id, idle_s, now)
            ]
            job = session.get_one(Job, job_id)
            interactive = job.lane == Lane.INTERACTIVE
            enqueue_after_commit(
                session,
                app,
                job_id,
                job.model_ref,
                unsent,
                settings.chunk_size,
                interactive=interactive,
            )
    return len(job_ids)


def max_run_s(settings: Settings) -> float:
    """How long a delivery may stay unacked before its worker counts as dead: a chunk is cut at
    its hard time limit, and may first wait for a pool process as long again."""
    return 2.0 * settings.chunk_time_limit_s + settings.reconcile_interval_s


def send_again(
    session: Any,
    app: Celery,
    key: tuple[str, str, bool],
    images: list[tuple[int, str, int]],
    size: int,
) -> None:
    """Once ``session`` commits: images lost once go back in chunks; an image lost again goes
    alone, so that whatever made its chunk vanish (a hang the time limits did not catch) cannot
    take mates with it. Both go back to the lane they came from (an interactive job's to the
    model's priority queue)."""
    job_id, model_ref, interactive = key
    grouped = [(i, k) for i, k, attempts in images if attempts <= 1]
    alone = [(i, k) for i, k, attempts in images if attempts > 1]
    enqueue_after_commit(session, app, job_id, model_ref, grouped, size, interactive=interactive)
    enqueue_after_commit(session, app, job_id, model_ref, alone, 1, interactive=interactive)


def claim_stale(
    settings: Settings, in_flight: Collection[int] = (), celery: Celery | None = None
) -> tuple[Chunks, Exhausted]:
    """Split the stale images no message holds any more: those to send again (marked enqueued,
    in one transaction, and sent through ``celery`` when it commits) and those sent
    ``max_attempts`` times already, to fail."""
    from db.collect import mark_enqueued, stale_pending
    from db.models import Lane
    from db.session import session_scope

    by_job: Chunks = defaultdict(list)
    exhausted: Exhausted = defaultdict(list)
    limit = RECONCILE_BATCH + len(in_flight)  # those in flight are read, then passed over
    with session_scope(db_sessions.session_factory(settings)) as session:
        images = stale_pending(session, settings.pending_timeout_s, limit)
        again = []
        for image in images:
            if image.id in in_flight:
                continue
            if image.attempts >= settings.max_attempts:
                exhausted[image.job_id].append((image.id, image.attempts))
                continue
            again.append(image.id)
            job = image.job  # loaded with it
            key = (image.job_id, job.model_ref, job.lane == Lane.INTERACTIVE)
            by_job[key].append((image.id, image.blob_key, image.attempts))
        mark_enqueued(session, again)
        for key, claimed in by_job.items():
            if celery is not None:
                send_again(session, celery, key, claimed, settings.chunk_size)
    return dict(by_job), dict(exhausted)


def fail_exhausted(settings: Settings, exhausted: Exhausted) -> int:
    """One transaction per job, each locking only its own job (the collector's lock order)."""
    from db.collect import give_up
    from db.session import session_scope

    failed = 0
    for job_id, images in exhausted.items():
        with session_scope(db_sessions.session_factory(settings)) as session:
            failed += give_up(session, job_id, images)
            finished = job_finished(session, job_id)
        if finished:
            announce(settings, job_id)
    return failed
