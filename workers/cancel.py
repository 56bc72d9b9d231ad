"""Cancellation through Redis: the API sets the flag, workers check it before each chunk.

Workers hold no database connection, so a Redis key is how they learn that a job was cancelled.
"""

from __future__ import annotations

from typing import Any

# Outlives any chunk still queued for the job (the longest a queue should hold one).
CANCEL_TTL_S = 7 * 24 * 3600


def cancel_key(job_id: str) -> str:
    return f"medflow:cancelled:{job_id}"


def mark_cancelled(client: Any, job_id: str) -> None:
    """Called by the API after the cancel is committed; ``client`` is a redis.Redis."""
    client.set(cancel_key(job_id), "1", ex=CANCEL_TTL_S)


def is_cancelled(client: Any, job_id: str) -> bool:
    return bool(client.exists(cancel_key(job_id)))
