"""A chunk retried image by image stays in its lane: an interactive chunk's singles go back to
the model's priority queue (not behind the batch), a batch chunk's to the batch queue."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import TimeLimitExceeded

from pipeline.errors import ErrorCode
from workers.enqueue import enqueue_images
from workers.tasks.infer import ChunkRef, InferTask, abandon, isolate

ITEMS = [(1, "a" * 64), (2, "b" * 64)]


def test_interactive_chunk_carries_its_lane(celery: Any, published: list[dict[str, Any]]) -> None:
    enqueue_images(celery, "job1", "tiny:1", ITEMS, chunk_size=16, interactive=True)
    enqueue_images(celery, "job2", "tiny:1", ITEMS, chunk_size=16)

    urgent, batch = published
    assert urgent["routing_key"] == "infer.tiny.priority"
    assert urgent["body"][1] == {"interactive": True}
    assert batch["routing_key"] == "infer.tiny"
    assert batch["body"][1] == {}  # batch messages keep their old shape


@pytest.mark.parametrize(
    ("interactive", "queue", "kwargs"),
    [(True, "infer.tiny.priority", {"interactive": True}), (False, "infer.tiny", {})],
)
def test_singles_go_back_to_the_chunks_lane(
    celery: Any,
    published: list[dict[str, Any]],
    interactive: bool,
    queue: str,
    kwargs: dict[str, Any],
) -> None:
    isolate(celery, ChunkRef("job1", "tiny:1", interactive), ITEMS)

    assert [m["routing_key"] for m in published] == [queue, queue]
    assert [m["body"][0][2] for m in published] == [[[1, "a" * 64]], [[2, "b" * 64]]]
    assert all(m["body"][1] == kwargs for m in published)


def test_abandoned_interactive_chunk_is_split_into_the_priority_queue(
    celery: Any, published: list[dict[str, Any]]
) -> None:
    # The path of a chunk that kept killing its process (or timed out) with mates.
    abandon(celery, "chunk-1", ChunkRef("job1", "tiny:1", True), ITEMS, ErrorCode.TIMED_OUT, 1)

    assert {m["routing_key"] for m in published} == {"infer.tiny.priority"}
    assert len(published) == 2


def test_hard_time_limit_reads_the_lane_from_the_tasks_kwargs(
    celery: Any, published: list[dict[str, Any]]
) -> None:
    # Celery calls on_failure in the worker's main process with the message's args and kwargs.
    task = SimpleNamespace(app=celery)
    args = ["job1", "tiny:1", [list(item) for item in ITEMS]]
    kwargs = {"interactive": True}
    InferTask.on_failure(task, TimeLimitExceeded(10), "t1", args, kwargs, None)  # type: ignore[arg-type]

    assert {m["routing_key"] for m in published} == {"infer.tiny.priority"}
