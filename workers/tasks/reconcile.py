"""``medflow.reconcile`` (beat, in the collector): re-queue images pending for too long.

Redis may lose its queues (it keeps nothing on disk by default); Postgres knows which images
still wait, so their chunks are rebuilt from the rows. Logs counts only.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from celery import Task, shared_task

from db.settings import Settings
from workers import resources
from workers.app import settings_of
from workers.enqueue import enqueue_images

log = logging.getLogger(__name__)

# Bounds one run's transaction and burst of messages; the next run takes the rest.
RECONCILE_BATCH = 2000

Chunks = dict[tuple[str, str], list[tuple[int, str]]]  # (job_id, model_ref) -> [(id, key)]


@shared_task(name="medflow.reconcile", bind=True, ignore_result=True, acks_late=True)
def reconcile(self: Task) -> int:
    settings = settings_of(self.app)
    stale = claim_stale(settings)
    for (job_id, model_ref), images in stale.items():
        # Sent after the commit above, like every enqueue (the rows must exist first).
        enqueue_images(self.app, job_id, model_ref, images, settings.chunk_size)
    count = sum(len(images) for images in stale.values())
    if count:
        log.warning("reconcile: re-queued %d stale images of %d jobs", count, len(stale))
    return count


def claim_stale(settings: Settings) -> Chunks:
    """Mark the stale images enqueued again (one transaction) and return what to send."""
    from db.collect import mark_enqueued, stale_pending
    from db.session import session_scope

    by_job: Chunks = defaultdict(list)
    with session_scope(resources.session_factory(settings)) as session:
        images = stale_pending(session, settings.pending_timeout_s, RECONCILE_BATCH)
        for image in images:  # stale_pending loads each image's job
            model_ref = f"{image.job.model_name}:{image.job.model_version}"
            by_job[(image.job_id, model_ref)].append((image.id, image.blob_key))
        mark_enqueued(session, [image.id for image in images])
    return dict(by_job)
