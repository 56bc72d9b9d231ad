"""A job's end, announced through Redis after the commit that wrote it.

The collector (or the reconciler, or a cancel) pushes one token onto ``medflow:finished:<id>``
once the transaction that finished the job has committed; ``POST /v1/infer`` blocks on that list
instead of polling the database. A list, not pub/sub: a waiter that starts listening after the
push still finds the token (it expires after FINISHED_TTL_S), and each waiter puts the token back
so that every waiter on the same job (an idempotent retry) wakes too.
"""

from __future__ import annotations

from typing import Any

FINISHED_TTL_S = 300


def finished_key(job_id: str) -> str:
    return f"medflow:finished:{job_id}"


def announce_finished(client: Any, job_id: str) -> None:
    """Call only after the commit; ``client`` is a redis.Redis."""
    key = finished_key(job_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.rpush(key, "1")
        pipe.expire(key, FINISHED_TTL_S)
        pipe.execute()


def wait_finished(client: Any, job_id: str, timeout_s: float) -> bool:
    """True once the job has finished (announced), False after ``timeout_s``."""
    key = finished_key(job_id)
    popped = client.blpop([key], timeout=max(0.01, timeout_s))
    if popped is None:
        return False
    announce_finished(client, job_id)  # put it back for the other waiters
    return True
