"""A chunk delivered twice (or more) still gives one result per image and exact counters.

With the workers paused, the job's chunks are rebuilt in the queue so that each one is delivered
twice back to back (the same message, as a Redis redelivery does, so both copies run at once on
the two worker processes while the job is still live), and the whole job is then sent once more
through workers.enqueue (new task ids, same arguments, as a re-queue does).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.e2e.conftest import CHUNK_SIZE
from tests.e2e.harness import E2EStack
from workers.enqueue import enqueue_images

JOB_SIZE = 40


def test_duplicated_chunks_write_each_result_once(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    paths = workload_paths[120 : 120 + JOB_SIZE]
    log_start = len(stack.logs()["collector.log"])
    with stack.paused():
        status, body = stack.submit_files(paths)
        assert status == 202, body
        job_id = body["id"]
        messages = stack.wait_queued(job_id, 3)  # 16 + 16 + 8
        originals = stack.redis.lrange(stack.queue, 0, -1)
        assert len(messages) == len(originals) == 3, messages
        # Rebuild the queue: every message twice in a row (kombu LPUSHes and BRPOPs the tail).
        stack.redis.delete(stack.queue)
        for raw in reversed(originals):
            stack.redis.lpush(stack.queue, raw, raw)
        pairs = [(image_id, key) for m in messages for image_id, key in m["args"][2]]
        model_ref = messages[0]["args"][1]
        enqueue_images(stack.celery, job_id, model_ref, pairs, CHUNK_SIZE)
        queued = stack.job_messages(job_id)
        rows = stack.image_rows(job_id)
    assert all(row.attempts == 1 for row in rows), "the reconciler re-queued during the pause"
    assert len(queued) == 9
    assert Counter(m["id"] for m in queued).most_common(1)[0][1] == 2

    view = stack.wait_for_job(job_id)
    stack.wait_idle()  # every copy consumed and collected
    view = stack.client.get_job(job_id)

    assert view["status"] == "completed", stack.diagnose(job_id)
    assert view["counts"] == {
        "total": JOB_SIZE, "succeeded": JOB_SIZE, "failed": 0, "pending": 0, "cancelled": 0,
    }  # fmt: skip
    rows = stack.image_rows(job_id)
    assert len(rows) == JOB_SIZE and len({row.id for row in rows}) == JOB_SIZE
    assert all(row.status.value == "succeeded" and row.scores for row in rows)
    results = stack.results(job_id)
    assert sorted(r["image_id"] for r in results) == sorted(row.id for row in rows)
    events = Counter(
        e.action for e in stack.audit_rows() if job_id in (e.object_id, e.payload.get("job_id"))
    )
    assert events["image.result"] == JOB_SIZE and events["job.finished"] == 1, events
    collected = stack.logs()["collector.log"][log_start:]
    assert ", 0 written" in collected, f"no duplicate ever reached the collector:\n{collected}"
