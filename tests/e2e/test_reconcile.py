"""Redis loses the queues mid-job; the reconciler rebuilds them from the database.

The workers are paused from before the submission until after the loss, so every chunk of the
job is certainly lost (none in flight): only the reconciler can finish it. Two losses: the
queues and kombu's unacked bookkeeping deleted, and the whole Redis database flushed (kombu's
bindings, the beat's and the API's state too: what a restart without persistence leaves).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import _REDIS_CLAIM
from tests.e2e.conftest import PENDING_TIMEOUT_S, RECONCILE_INTERVAL_S
from tests.e2e.harness import UNACKED, E2EStack
from workers.queues import RESULTS_QUEUE

JOB_SIZE = 24
# Pending for PENDING_TIMEOUT_S, then found by the next reconcile run, then processed.
RECOVERY_BOUND_S = PENDING_TIMEOUT_S + 2 * RECONCILE_INTERVAL_S + 60


def delete_queues(stack: E2EStack) -> None:
    stack.redis.delete(stack.queue, RESULTS_QUEUE, *UNACKED)


def flush_database(stack: E2EStack) -> None:
    # In one transaction with the session's claim on this database (tests/conftest.py), so no
    # other test session can take the database in between.
    claim = stack.redis.get(_REDIS_CLAIM)
    with stack.redis.pipeline(transaction=True) as pipe:
        pipe.flushdb().set(_REDIS_CLAIM, claim or b"e2e", ex=6 * 3600).execute()


@pytest.mark.parametrize("lose", [delete_queues, flush_database], ids=["queues", "flushdb"])
def test_the_reconciler_finishes_a_job_whose_queue_was_lost(
    stack: E2EStack, workload_paths: list[Path], lose: Callable[[E2EStack], None]
) -> None:
    paths = workload_paths[160 : 160 + JOB_SIZE]
    log_start = len(stack.logs()["collector.log"])
    with stack.paused():
        status, body = stack.submit_files(paths)
        assert status == 202, body
        job_id = body["id"]
        assert len(stack.wait_queued(job_id, 2)) == 2
        lose(stack)
        assert stack.redis.llen(stack.queue) == 0
        lost_at = time.monotonic()

    view = stack.wait_for_job(job_id, timeout_s=RECOVERY_BOUND_S)
    took = time.monotonic() - lost_at

    assert view["status"] == "completed", stack.diagnose(job_id)
    assert view["counts"]["succeeded"] == JOB_SIZE
    rows = stack.image_rows(job_id)
    assert len(rows) == JOB_SIZE
    # Every image was sent a second time, by the reconciler (the API sends once).
    assert all(row.attempts >= 2 for row in rows), [row.attempts for row in rows]
    assert "reconcile: re-queued" in stack.logs()["collector.log"][log_start:]
    assert took < RECOVERY_BOUND_S
    # And the pipeline goes on as before for new work.
    status, body = stack.submit_files(paths[:4])
    assert status == 202 and stack.wait_for_job(body["id"])["status"] == "completed"
