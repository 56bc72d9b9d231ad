"""The interactive lane through the real stack: priority over queued batch work, 202 past the
timeout, the model's rate measured from real chunks.

Ordering is made deterministic by pausing the worker's consumers (Celery's cancel_consumer)
while the queues fill, then resuming them: what the worker takes first then depends only on the
order in which it asks for its queues, not on how fast this machine happens to be.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.e2e.harness import E2EStack
from workers.queues import priority_queue

BATCH = 300
URGENT = 6


def infer(stack: E2EStack, path: Path, timeout_s: float, key: str | None = None) -> tuple:
    status, body = stack.client.infer(path, stack.model, timeout_s, idempotency_key=key)
    return status, body


def test_priority_images_complete_before_300_queued_batch_images(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    priority = priority_queue(stack.model)
    answers: list[tuple[int, dict[str, Any]]] = []
    urgent = workload_paths[:URGENT]
    with stack.paused(priority, stack.queue):
        job_id = stack.upload_job((workload_paths * 2)[:BATCH])
        assert len(stack.job_messages(job_id)) * stack.settings.chunk_size >= BATCH
        threads = [
            threading.Thread(target=lambda p=p: answers.append(infer(stack, p, 60))) for p in urgent
        ]
        for thread in threads:
            thread.start()
        stack.wait_until(lambda: stack.redis.llen(priority) == URGENT, 30, "urgent chunks queued")
    for thread in threads:
        thread.join(90)
    assert sorted(status for status, _ in answers) == [200] * URGENT, answers
    assert all(body["status"] == "succeeded" for _, body in answers), answers
    view = stack.wait_for_job(job_id)
    assert view["counts"]["succeeded"] + view["counts"]["failed"] == BATCH, view

    last_urgent = max(_completed_at(stack, body["job_id"]) for _, body in answers)
    batch_done = [row.completed_at for row in stack.image_rows(job_id)]
    before = sum(moment < last_urgent for moment in batch_done)
    # Draining the priority queue first, the worker takes its first batch chunk with the last
    # urgent image, which finishes first: no batch image before it (one chunk of slack for a
    # collect message overtaken). kombu's default round robin takes a batch chunk between
    # urgent images: measured at 32 and more here.
    assert before <= stack.settings.chunk_size, f"{before} batch images before the last urgent"


def _completed_at(stack: E2EStack, job_id: str) -> Any:
    (row,) = stack.image_rows(job_id)
    return row.completed_at


def test_past_its_timeout_an_infer_answers_202_and_the_result_appears_later(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    key = secrets.token_hex(8)
    image = workload_paths[5]
    with stack.paused(priority_queue(stack.model)):
        status, body = infer(stack, image, 0.5, key)
        assert status == 202, body
        assert body["lane"] == "interactive" and body["status"] == "queued", body
        assert body["eta"]["basis"]["images_left"] == 1, body
    view = stack.wait_for_job(body["id"])
    assert view["status"] == "completed", view
    (result,) = stack.results(body["id"])
    assert result["status"] == "succeeded" and result["scores"], result
    # The same request again (same Idempotency-Key): the same job, now answered at once.
    again_status, again = infer(stack, image, 5, key)
    assert again_status == 200 and again["job_id"] == body["id"], again
    assert again["scores"] == result["scores"]
    audited = [e.action for e in stack.audit_rows() if e.object_id == body["id"]]
    assert audited[0] == "job.submitted" and "job.finished" in audited, audited


def test_the_collector_measures_the_models_rate_from_real_chunks(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    from db.models import ModelQueue

    with stack.paused():  # a backlog from the start: the whole job is measured
        job_id = stack.upload_job(workload_paths)
    view = stack.wait_for_job(job_id)
    with stack.sessions() as session:
        row = session.scalars(select(ModelQueue).where(ModelQueue.model_name == stack.model)).one()
    assert row.rate_per_s is not None and row.rate_per_s > 0
    assert row.batch_admitted == row.batch_done  # nothing left queued: counters agree
    # An EWMA of windows, not this job's average: the same order of magnitude.
    throughput = view["throughput_per_s"]
    assert throughput / 3 < row.rate_per_s < throughput * 3, (row.rate_per_s, throughput)
    # And a job submitted now has an ETA from the start.
    status, body = stack.submit_files(workload_paths[:3])
    assert status == 202 and body["eta"]["seconds"] is not None, body
    stack.wait_for_job(body["id"])
