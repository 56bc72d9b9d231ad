"""A poison image (kills its process every time) and an always-hanging image: each fails alone,
within a bound set by the settings, and its mates complete."""

from __future__ import annotations

import time

from tests.e2e.harness import E2EStack
from tests.faults.checks import assert_sound, log_text, wait_done
from tests.faults.conftest import (
    CHUNK_START_LIMIT,
    CHUNK_TIME_LIMIT_S,
    IMAGE_TIME_LIMIT_S,
    JOB_SIZE,
    ImageMaker,
)
from workers.fault_hooks import HANG_MARK, KILL_MARK

BAD = 101  # in the 13th chunk of 8
POOL_DEATH = "exited with 'signal 9 (SIGKILL)'"
# Each death costs a pool process restart (a model load, about a second here): generous.
POISON_BOUND_S = 60.0
HANG_BOUND_S = CHUNK_TIME_LIMIT_S + IMAGE_TIME_LIMIT_S + 30.0


def test_poison_image_fails_alone_and_stops_killing(stack: E2EStack, images: ImageMaker) -> None:
    deaths_before = log_text(stack, "worker-nodule-detector").count(POOL_DEATH)
    started = time.monotonic()
    job_id = stack.upload_job(images.job(JOB_SIZE, {BAD: KILL_MARK}))

    wait_done(stack, job_id, POISON_BOUND_S)
    elapsed = time.monotonic() - started

    states = assert_sound(stack, job_id)
    assert states.pop(BAD) == ("failed", "WORKER_CRASHED")
    assert set(states.values()) == {("succeeded", None)}
    assert elapsed < POISON_BOUND_S
    # Its chunk died CHUNK_START_LIMIT times, then the image alone as often; then no more.
    time.sleep(2 * CHUNK_START_LIMIT)
    deaths = log_text(stack, "worker-nodule-detector").count(POOL_DEATH) - deaths_before
    assert deaths == 2 * CHUNK_START_LIMIT


def test_hanging_image_fails_alone(stack: E2EStack, images: ImageMaker) -> None:
    started = time.monotonic()
    job_id = stack.upload_job(images.job(JOB_SIZE, {BAD: HANG_MARK}))

    wait_done(stack, job_id, HANG_BOUND_S)

    states = assert_sound(stack, job_id)
    assert states.pop(BAD) == ("failed", "TIMED_OUT")
    assert set(states.values()) == {("succeeded", None)}
    assert time.monotonic() - started < HANG_BOUND_S
