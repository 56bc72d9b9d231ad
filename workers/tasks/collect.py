"""``medflow.collect``: write a chunk's results to the database (the collector's only job).

The collector is the single writer of results; record_results is idempotent (only pending
images change), so a redelivered or duplicated message is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from messages.chunk_results import ChunkResults
from workers import resources
from workers.app import settings_of

log = logging.getLogger(__name__)


@shared_task(
    name="medflow.collect",
    bind=True,
    ignore_result=True,
    acks_late=True,
    # A database restart or a lock timeout is transient: retry with growing, jittered delays
    # instead of losing the chunk. Any other error is a bug and fails loudly in Flower.
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=20,
)
def collect(self: Task, message: dict[str, Any]) -> int:
    from db.collect import record_results
    from db.session import session_scope

    chunk = ChunkResults.from_message(message)
    # The engine is created here, lazily, in the pool process (after the fork).
    with session_scope(resources.session_factory(settings_of(self.app))) as session:
        written = record_results(session, chunk.job_id, chunk.images)
    log.info("collected %d results, %d written", len(chunk.images), written)
    return written
