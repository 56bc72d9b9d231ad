"""Cancelling a running job: what is done stays, nothing is written afterwards, workers go on.

To cancel *mid-job* every time (not only when the machine happens to be slow), the test lets the
workers start on the job, then stops them taking further chunks (Celery's cancel_consumer, what
an operator does from Flower) so that part of the job is certainly still queued when the cancel
arrives; the workers then take those chunks again and must skip them. The upload itself runs
paused too: images are queued as each request adds them, and on a fast machine the workers would
otherwise finish the job before its upload does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tests.e2e.harness import E2EStack

JOB_SIZE = 150


def test_cancel_mid_job_stops_it_and_the_workers_stay_healthy(
    stack: E2EStack, workload_paths: list[Path]
) -> None:
    with stack.paused():
        job_id = stack.upload_job(workload_paths[:JOB_SIZE])

    def started() -> bool:
        counts = stack.client.get_job(job_id)["counts"]
        return counts["succeeded"] + counts["failed"] > 0

    stack.wait_until(started, 60, f"the first results of job {job_id}", job_id, poll_s=0.05)
    with stack.paused():
        queued = len(stack.job_messages(job_id))
        cancelled = stack.client.cancel(job_id)
        assert queued > 0, "the job finished before the cancel: the test proves nothing"
    assert cancelled["status"] == "cancelled", cancelled
    assert cancelled["counts"]["cancelled"] > 0, cancelled
    cancelled_at = parse(cancelled["finished_at"])

    # The workers take the remaining chunks and skip them; in-flight results are dropped.
    stack.wait_idle()
    view = stack.client.get_job(job_id)
    assert view["status"] == "cancelled"
    assert view["counts"] == cancelled["counts"], "results were counted after the cancel"
    counts = view["counts"]
    assert counts["total"] == JOB_SIZE and counts["pending"] == 0
    assert counts["succeeded"] + counts["failed"] + counts["cancelled"] == JOB_SIZE
    rows = stack.image_rows(job_id)
    done = [row for row in rows if row.status.value in ("succeeded", "failed")]
    dropped = [row for row in rows if row.status.value == "cancelled"]
    assert len(done) == counts["succeeded"] + counts["failed"] and len(dropped) > 0
    assert all(row.completed_at <= cancelled_at for row in done), "a result written after cancel"
    assert all(row.scores is None and row.error_code is None for row in dropped)
    # The audit chain agrees: no result event for this job after its cancel event.
    events = [e for e in stack.audit_rows() if job_id in (e.object_id, e.payload.get("job_id"))]
    cancel_seq = next(e.seq for e in events if e.action == "job.cancelled")
    late = [e.seq for e in events if e.action == "image.result" and e.seq > cancel_seq]
    assert not late, f"result events after the cancel: {late}"
    assert "skipped: job cancelled" in stack.logs()[f"worker-{stack.model}.log"]

    # The workers are still healthy: the next job runs to the end.
    next_job = stack.upload_job(workload_paths[:8])
    assert stack.wait_for_job(next_job)["status"] == "completed", stack.diagnose(next_job)


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
