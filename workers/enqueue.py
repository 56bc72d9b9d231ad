"""Send a job's images to its model's queue in chunks: ids and content hashes only.

Refs (file names, URIs) may carry PHI and pixels would bloat Redis, so a message holds
``[[image_id, blob_key], ...]`` and nothing else about an image. A send must follow the commit
of the transaction that created the image rows (otherwise a fast worker may outrun the rows):
``workers.enqueue_on_commit`` registers it on the session, so no caller has to remember.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from celery import Celery

from workers.queues import lane_queue, model_name_of

INFER_TASK = "medflow.infer_chunk"
# When the chunk was sent (epoch seconds): the worker reports how long it waited in the queue.
SENT_AT_HEADER = "medflow_sent_at"
# infer_chunk(..., interactive=True): a chunk of the interactive lane, so that a worker retrying
# its images one by one (workers.tasks.infer.isolate) sends them back to the priority queue. A
# keyword, not a header: the hard time limit's handler sees the task's args and kwargs only.
INTERACTIVE_KWARG = "interactive"


def lane_kwargs(interactive: bool) -> dict[str, Any]:
    """infer_chunk's keyword arguments for a lane (none for the batch: messages as before)."""
    return {INTERACTIVE_KWARG: True} if interactive else {}


class ImageLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def blob_key(self) -> str: ...


def enqueue_images(
    celery: Celery,
    job_id: str,
    model_ref: str,
    images: Iterable[ImageLike] | Iterable[Sequence[Any]],
    chunk_size: int,
    *,
    interactive: bool = False,
) -> int:
    """Send ``images`` (Image rows, or ``(image_id, blob_key)`` pairs); returns chunks sent.

    ``interactive``: to the model's priority queue, which its workers drain first.
    """
    queue = lane_queue(model_name_of(model_ref), interactive)
    sent = 0
    # One producer (one connection) for the whole job instead of one per chunk.
    with celery.producer_or_acquire() as producer:
        for chunk in chunked((_item(image) for image in images), chunk_size):
            celery.send_task(
                INFER_TASK,
                args=[job_id, model_ref, chunk],
                kwargs=lane_kwargs(interactive),
                queue=queue,
                producer=producer,
                headers={SENT_AT_HEADER: time.time()},
            )
            sent += 1
    return sent


def chunked(items: Iterable[list[Any]], size: int) -> Iterator[list[list[Any]]]:
    if size < 1:
        raise ValueError("chunk size must be >= 1")
    chunk: list[list[Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _item(image: Any) -> list[Any]:
    if hasattr(image, "blob_key"):
        return [int(image.id), str(image.blob_key)]
    image_id, blob_key = image
    return [int(image_id), str(blob_key)]
