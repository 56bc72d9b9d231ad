"""Processes killed mid-job: pool children, the whole worker, the collector; and the beat:
exactly one sends, whatever dies."""

from __future__ import annotations

import os
import signal
import time

from tests.e2e.harness import E2EStack
from tests.faults.checks import (
    assert_sound,
    child,
    kill,
    log_text,
    pool_pids,
    restart,
    wait_done,
)
from tests.faults.conftest import CHUNK_TIME_LIMIT_S, JOB_SIZE, RECONCILE_INTERVAL_S, ImageMaker

WORKER = "worker-nodule-detector"
SENT = "Sending due task reconcile"
# A worker killed whole leaves its deliveries unacked: the reconciler puts them back after
# twice the chunk time limit (workers.tasks.reconcile.max_run_s).
RECOVERY_S = 2 * CHUNK_TIME_LIMIT_S + 4 * RECONCILE_INTERVAL_S + 60


def test_killed_pool_children(stack: E2EStack, images: ImageMaker) -> None:
    with stack.paused():
        job_id = stack.upload_job(images.job(JOB_SIZE))
    for _ in range(3):
        for pid in pool_pids(stack, WORKER):
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)

    wait_done(stack, job_id, RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}


def test_killed_worker(stack: E2EStack, images: ImageMaker) -> None:
    with stack.paused():
        job_id = stack.upload_job(images.job(JOB_SIZE))
        stack.wait_queued(job_id, 3)
    time.sleep(0.3)  # it takes its first chunks
    kill(stack, WORKER)
    restart(stack, WORKER)

    wait_done(stack, job_id, RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}


def test_killed_collector(stack: E2EStack, images: ImageMaker) -> None:
    job_id = stack.upload_job(images.job(JOB_SIZE))
    time.sleep(0.5)
    kill(stack, "collector", group=False)  # its pool process is left orphaned
    time.sleep(1.0)
    restart(stack, "collector")

    wait_done(stack, job_id, RECOVERY_S)

    states = assert_sound(stack, job_id)
    assert set(states.values()) == {("succeeded", None)}
    # The beat is not the collector's child: it still sends, one reconcile per interval.
    assert sends_per_interval(stack, ["beat"]) == {"beat": 1}


def test_one_beat_sends_whatever_dies(stack: E2EStack) -> None:
    first = child(stack, "beat")
    second = stack.stack._spawn("beat-2", second_beat_argv(first.argv, stack), first.env)
    assert sends_per_interval(stack, ["beat", "beat-2"]) == {"beat": 1}, "two beats sent"

    kill(stack, "beat")  # SIGKILL: its lock is left to expire
    time.sleep(3 * RECONCILE_INTERVAL_S + 2)  # workers.beat.lock_ttl_s, and one more tick
    assert sends_per_interval(stack, ["beat", "beat-2"]) == {"beat-2": 1}
    assert second.alive()
    restart(stack, "beat")  # back to a holder and an idle standby
    assert sends_per_interval(stack, ["beat", "beat-2"]) == {"beat-2": 1}


def second_beat_argv(argv: list[str], stack: E2EStack) -> list[str]:
    schedule = argv.index("-s") + 1
    return [*argv[:schedule], str(stack.workdir / "celerybeat-schedule-2"), *argv[schedule + 1 :]]


def sends_per_interval(stack: E2EStack, names: list[str], intervals: int = 4) -> dict[str, int]:
    """Reconcile sends per interval of each beat that sent any, over ``intervals`` intervals."""
    before = {name: log_text(stack, name).count(SENT) for name in names}
    time.sleep(intervals * RECONCILE_INTERVAL_S + 0.5)
    counts = {name: log_text(stack, name).count(SENT) - before[name] for name in names}
    # Within one of `intervals` (the window's ends cut a tick either way): a rate of 1.
    rates = {name: round(count / intervals) for name, count in counts.items() if count}
    assert all(abs(c - intervals) <= 1 for c in counts.values() if c), counts
    return rates
