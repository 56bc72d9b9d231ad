"""The model's measured rate and the ETA arithmetic (no database: rows built in memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.model_queue import (
    RATE_WINDOW_S,
    Outlook,
    QueueFull,
    mark_done,
    outlook,
    seconds_until_meetable,
    seconds_until_room,
)
from db.models import Job, JobStatus, Lane, ModelQueue

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class OneRow:
    """Just enough of a Session for mark_done: one row, returned by get()."""

    def __init__(self, row: ModelQueue) -> None:
        self.row = row

    def get(self, *_args: object, **_kwargs: object) -> ModelQueue:
        return self.row

    def flush(self) -> None:
        pass


def row(batch_queued: int, interactive_queued: int = 0) -> ModelQueue:
    return ModelQueue(
        model_name="m",
        batch_admitted=batch_queued,
        batch_done=0,
        interactive_admitted=interactive_queued,
        interactive_done=0,
        window_images=0,
    )


def test_the_rate_is_sampled_only_while_a_backlog_lasts() -> None:
    queue = row(1000)
    session = OneRow(queue)
    mark_done(session, "m", Lane.BATCH, 8, T0)  # opens the window; its own work not counted
    assert queue.rate_per_s is None and queue.window_started_at == T0
    step = timedelta(seconds=0.25)
    for n in range(1, 9):  # 8 chunks of 8 in 2 s: 32 images/s
        mark_done(session, "m", Lane.BATCH, 8, T0 + n * step)
    assert queue.rate_per_s == pytest.approx(64 / RATE_WINDOW_S)
    assert queue.batch_done == 72
    # A queue that runs dry ends the window: arrivals are not the model's rate.
    drained = row(8)
    mark_done(OneRow(drained), "m", Lane.BATCH, 8, T0)
    assert drained.window_started_at is None and drained.rate_per_s is None


def test_later_windows_move_the_rate_by_an_ewma() -> None:
    queue = row(10_000)
    queue.rate_per_s, queue.window_started_at = 30.0, T0
    mark_done(OneRow(queue), "m", Lane.BATCH, 20, T0 + timedelta(seconds=RATE_WINDOW_S))
    assert 10.0 < queue.rate_per_s < 30.0  # moved toward the 10/s sample, not to it


def job(lane: Lane, queue_end: int, pending: int) -> Job:
    return Job(lane=lane, queue_end=queue_end, total=pending, succeeded=0, failed=0,
               cancelled=0, status=JobStatus.QUEUED)  # fmt: skip


def test_a_batch_job_waits_for_what_was_admitted_before_it_and_for_interactive_images() -> None:
    queue = row(100, interactive_queued=2)
    queue.batch_done, queue.rate_per_s = 40, 20.0
    seen = outlook(job(Lane.BATCH, queue_end=90, pending=10), queue)
    assert (seen.images_ahead, seen.images_left) == (90 - 40 - 10 + 2, 10)
    assert seen.eta_s == pytest.approx((42 + 10) / 20.0)
    urgent = outlook(job(Lane.INTERACTIVE, queue_end=2, pending=1), queue)
    assert urgent.images_ahead == 1  # the interactive image admitted before it, not the batch


def test_retry_after_figures() -> None:
    assert seconds_until_meetable(Outlook(100, 1, 10.0), within_s=4.0) == 7  # 10.1 - 4
    assert seconds_until_room(QueueFull(queued=95, cap=100, requested=25, rate_per_s=4.0)) == 5
    assert seconds_until_room(QueueFull(queued=95, cap=100, requested=25, rate_per_s=None)) == 1


def test_urgent_images_between_batch_chunks_slow_the_batch_rate_they_do_not_add_to_it() -> None:
    queue = row(1000, interactive_queued=40)
    session = OneRow(queue)
    mark_done(session, "m", Lane.BATCH, 8, T0)  # opens the window
    step = timedelta(seconds=0.25)
    for n in range(1, 9):  # per 0.25 s: one batch chunk of 8 and 4 urgent single images
        mark_done(session, "m", Lane.INTERACTIVE, 4, T0 + n * step - step / 2)
        mark_done(session, "m", Lane.BATCH, 8, T0 + n * step)
    assert queue.rate_per_s == pytest.approx(64 / RATE_WINDOW_S)  # batch images only
    assert queue.interactive_done == 32
    # With no batch queued, urgent images are what the model does: they are counted.
    alone = row(0, interactive_queued=100)
    session = OneRow(alone)
    for n in range(9):
        mark_done(session, "m", Lane.INTERACTIVE, 4, T0 + n * step)
    assert alone.rate_per_s == pytest.approx(32 / RATE_WINDOW_S)
