"""Resubmitting with the same Idempotency-Key: the same job, its images and chunks only once.

The workers are paused while both requests go out, so the queue shows exactly what the two
submissions enqueued (nothing consumed in between).
"""

from __future__ import annotations

import math
import secrets
import time
from pathlib import Path

from tests.e2e.conftest import CHUNK_SIZE, PENDING_TIMEOUT_S
from tests.e2e.harness import E2EStack

JOB_SIZE = 20


def test_same_idempotency_key_gives_the_same_job_enqueued_once(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    paths = workload_paths[40 : 40 + JOB_SIZE]
    key = f"e2e-{secrets.token_hex(8)}"
    with stack.paused():
        first_status, first = stack.submit_files(paths, idempotency_key=key)
        assert first_status == 202, first
        job_id = first["id"]
        chunks = math.ceil(JOB_SIZE / CHUNK_SIZE)
        after_first = stack.wait_queued(job_id, chunks)
        second_status, second = stack.submit_files(paths, idempotency_key=key)
        time.sleep(0.5)  # an enqueue, had the replay made one, lands well within this
        after_second = stack.job_messages(job_id)
        rows = stack.image_rows(job_id)

    assert second_status == 200 and second["id"] == job_id, second
    # The reconciler re-queues only images sent more than PENDING_TIMEOUT_S ago (their
    # attempts then exceed 1); anything else in the queue came from the submissions.
    assert all(row.attempts == 1 for row in rows), f"paused longer than {PENDING_TIMEOUT_S} s?"
    assert len(after_first) == chunks, after_first
    assert sorted(m["id"] for m in after_second) == sorted(m["id"] for m in after_first)
    sent = [image_id for m in after_second for image_id, _key in m["args"][2]]
    assert sorted(sent) == sorted(row.id for row in rows) and len(set(sent)) == JOB_SIZE
    assert len(rows) == JOB_SIZE and second["counts"]["total"] == JOB_SIZE

    view = stack.wait_for_job(job_id)
    assert view["status"] == "completed" and view["counts"]["succeeded"] == JOB_SIZE, view
    results = stack.results(job_id)
    assert len(results) == JOB_SIZE and len({r["image_id"] for r in results}) == JOB_SIZE
    # A third try after the job finished still answers with the job, and adds nothing.
    status, third = stack.submit_files(paths, idempotency_key=key)
    assert status == 200 and third["id"] == job_id and third["counts"] == view["counts"]
    assert len(stack.image_rows(job_id)) == JOB_SIZE


def test_a_different_key_is_a_different_job(stack: E2EStack, workload_paths: list[Path]) -> None:
    paths = workload_paths[60:62]
    status_a, job_a = stack.submit_files(paths, idempotency_key=f"e2e-{secrets.token_hex(8)}")
    status_b, job_b = stack.submit_files(paths, idempotency_key=f"e2e-{secrets.token_hex(8)}")
    assert (status_a, status_b) == (202, 202) and job_a["id"] != job_b["id"]
    for job_id in (job_a["id"], job_b["id"]):
        assert stack.wait_for_job(job_id)["status"] == "completed"
