"""Every message delivered twice, and Redis and Postgres failing under a running job (the
Redis restart last: the test process's own broker connections do not survive it)."""

from __future__ import annotations

import time

from tests.e2e.harness import E2EStack
from tests.faults.checks import assert_sound, wait_done
from tests.faults.conftest import JOB_SIZE, PENDING_TIMEOUT_S, RECONCILE_INTERVAL_S, ImageMaker
from tests.faults.servers import PrivatePostgres, PrivateRedis

# Everything Redis held is gone: the reconciler re-sends what Postgres still calls pending.
RECOVERY_S = PENDING_TIMEOUT_S + 4 * RECONCILE_INTERVAL_S + 60
# The outage. The collector's writes fail meanwhile and retry with jittered delays of
# at most 30 s (workers.tasks.collect): each is written within 30 s of the restart.
POSTGRES_DOWN_S = 30
POSTGRES_RECOVERY_S = POSTGRES_DOWN_S + RECOVERY_S


def test_every_message_duplicated(stack: E2EStack, images: ImageMaker) -> None:
    with stack.paused():
        job_id = stack.upload_job(images.job(JOB_SIZE))
        stack.wait_queued(job_id, 3)
        originals = stack.redis.lrange(stack.queue, 0, -1)
        stack.redis.delete(stack.queue)
        for raw in reversed(originals):
            stack.redis.lpush(stack.queue, raw, raw)

    wait_done(stack, job_id, RECOVERY_S)
    stack.wait_idle()  # every copy consumed, and its results collected

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}


def test_redis_flushed(stack: E2EStack, images: ImageMaker) -> None:
    with stack.paused():
        job_id = stack.upload_job(images.job(JOB_SIZE))
        stack.wait_queued(job_id, 3)
        stack.redis.flushall()

    wait_done(stack, job_id, RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}


def test_postgres_stopped(
    stack: E2EStack, images: ImageMaker, postgres_server: PrivatePostgres
) -> None:
    job_id = stack.upload_job(images.job(JOB_SIZE))
    written = wait_some_written(stack, job_id)  # mid-job: the first results are in
    postgres_server.stop()
    time.sleep(POSTGRES_DOWN_S)
    postgres_server.start()

    wait_done(stack, job_id, POSTGRES_RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}
    assert written < JOB_SIZE, "the job was over before Postgres stopped"


def wait_some_written(stack: E2EStack, job_id: str) -> int:
    """Images already written once the first result is in (read from the database)."""
    from db.models import Job

    def written() -> int:
        with stack.sessions() as session:
            job = session.get_one(Job, job_id)
            return job.succeeded + job.failed

    return int(stack.wait_until(written, 60, f"a first result of {job_id}", job_id, poll_s=0.05))


def test_redis_restarted_empty(
    stack: E2EStack, images: ImageMaker, redis_server: PrivateRedis
) -> None:
    job_id = stack.upload_job(images.job(JOB_SIZE))
    time.sleep(0.3)
    redis_server.restart_empty()
    reconnect(stack)

    wait_done(stack, job_id, RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}


def reconnect(stack: E2EStack) -> None:
    """The test's own clients drop their connections to the old server (the stack's processes
    reconnect by themselves: that is what the test is about)."""
    stack.redis.connection_pool.disconnect()
    if stack._celery is not None:
        stack._celery.close()
        stack._celery = None
