"""What workers and the collector note in Redis about chunks: how often each was started, and
which images are final already.

Both are hints that keep redelivery bounded and cheap. Workers hold no database connection, so
Redis is where a chunk's deaths are counted (a process killed mid-chunk cannot record anything
afterwards: the count is taken before the work). Losing these keys (Redis flushed) costs repeated
work only, never a result: the collector's writes stay idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Longer than a chunk can circulate (redelivery happens within the visibility timeout).
STARTS_TTL_S = 24 * 3600
# Like the cancel key: outlives any copy of a chunk still queued for the job.
FINAL_TTL_S = 7 * 24 * 3600


def starts_key(task_id: str) -> str:
    return f"medflow:starts:{task_id}"


def final_key(job_id: str) -> str:
    return f"medflow:final:{job_id}"


def count_start(client: Any, task_id: str) -> int:
    """This start of the task ``task_id``, counted: 1 the first time, 2 after one death..."""
    key = starts_key(task_id)
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, STARTS_TTL_S)
    started, _ = pipe.execute()
    return int(started)


def forget_starts(client: Any, task_id: str) -> None:
    """The task ran to its end: a later copy of it (a late redelivery) starts from one again
    rather than being taken for a chunk that keeps dying."""
    client.delete(starts_key(task_id))


def mark_final(client: Any, job_id: str, image_ids: Sequence[int]) -> None:
    """Called by the collector after its commit: these images take no more work."""
    if not image_ids:
        return
    key = final_key(job_id)
    pipe = client.pipeline()
    pipe.sadd(key, *image_ids)
    pipe.expire(key, FINAL_TTL_S)
    pipe.execute()


def not_final(client: Any, job_id: str, items: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The ``(image_id, blob_key)`` items the collector has not written yet."""
    if not items:
        return []
    flags = client.smismember(final_key(job_id), [image_id for image_id, _ in items])
    return [item for item, done in zip(items, flags, strict=True) if not done]
