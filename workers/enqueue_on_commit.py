"""Sending images to the workers once the transaction that wrote their rows commits.

The API's intake and the collector's reconciler send through here; inference workers (which send
single-image tasks with ``workers.enqueue`` directly) never import it, nor ``db``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery
from sqlalchemy.orm import Session

from db.session import after_commit
from workers.enqueue import enqueue_images

log = logging.getLogger(__name__)


def enqueue_after_commit(
    session: Session,
    celery: Celery,
    job_id: str,
    model_ref: str,
    images: Sequence[tuple[int, str]],
    chunk_size: int,
    *,
    interactive: bool = False,
) -> None:
    """Send ``(image_id, blob_key)`` pairs once ``session``'s transaction commits; never on
    rollback. Read the pairs inside the transaction (ids exist only after the flush).
    ``interactive``: to the model's priority queue (as enqueue_images).

    A failed send is logged, not raised: the rows are committed as pending and sent, so the
    reconciler re-queues them after ``pending_timeout_s``.
    """
    if not images:
        return
    pairs = [(int(image_id), str(key)) for image_id, key in images]

    def send_images() -> None:
        try:
            enqueue_images(celery, job_id, model_ref, pairs, chunk_size, interactive=interactive)
        except Exception as exc:
            log.warning(
                "job %s: enqueue failed (%s); the reconciler will re-queue its images",
                job_id,
                type(exc).__name__,
            )

    after_commit(session, send_images)
