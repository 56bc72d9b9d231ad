"""Every message delivered twice, and Redis and Postgres failing under a running job (the
Redis restart last: the test process's own broker connections do not survive it)."""

from __future__ import annotations

import time

from tests.e2e.harness import E2EStack
from tests.faults.checks import assert_sound, wait_done
from tests.faults.conftest import PENDING_TIMEOUT_S, RECONCILE_INTERVAL_S, ImageMaker
from tests.faults.servers import PrivatePostgres, PrivateRedis

JOB_SIZE = 24
# Everything Redis held is gone: the reconciler re-sends what Postgres still calls pending.
RECOVERY_S = PENDING_TIMEOUT_S + 4 * RECONCILE_INTERVAL_S + 60


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
    postgres_server.stop()
    time.sleep(5)  # the collector's writes fail meanwhile, and retry
    postgres_server.start()

    wait_done(stack, job_id, RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}


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
