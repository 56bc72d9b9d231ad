"""job.finished webhooks from the stack's collector to a real receiver: once per job, signed;
re-sent after a dispatcher killed mid-send (the receiver drops the copy by its event id);
retried after a 500. Every other fault test checks one signed event per job (assert_sound)."""

from __future__ import annotations

import time

from sqlalchemy import select

from db.models import OutboxEvent, OutboxStatus
from tests.e2e.harness import E2EStack
from tests.faults.checks import assert_sound, kill, restart, wait_done, wait_for_webhook
from tests.faults.conftest import OUTBOX_LEASE_S, ImageMaker
from tests.webhook_receiver import HANG, WebhookReceiver

JOB_SIZE = 8
DONE_S = 120


def delivery(stack: E2EStack, job_id: str) -> OutboxEvent:
    with stack.sessions() as session:
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.subscriber.is_not(None)))
        return next(row for row in rows if row.payload["job_id"] == job_id)


def receiver_of(stack: E2EStack) -> WebhookReceiver:
    assert stack.webhooks is not None
    return stack.webhooks


def test_an_acknowledged_event_is_never_sent_again(stack: E2EStack, images: ImageMaker) -> None:
    job_id = stack.upload_job(images.job(JOB_SIZE))
    wait_done(stack, job_id, DONE_S)
    assert_sound(stack, job_id)  # one event, signed, acknowledged once
    time.sleep(OUTBOX_LEASE_S + 3)  # past the lease: a lost outcome would have re-sent by now
    assert len(receiver_of(stack).for_job(job_id)) == 1
    row = delivery(stack, job_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 1, None)


def test_a_500_is_retried(stack: E2EStack, images: ImageMaker) -> None:
    receiver = receiver_of(stack)
    # Every earlier job's event was acknowledged (assert_sound): the next request is this job's.
    # (Not stack.paused(): its broker connection may be stale after test_servers' Redis restart.)
    receiver.fail_next(1, 500)
    job_id = stack.upload_job(images.job(JOB_SIZE))
    wait_done(stack, job_id, DONE_S)
    assert_sound(stack, job_id)
    assert [r.answered for r in receiver.for_job(job_id)] == [500, 200]
    assert delivery(stack, job_id).attempts == 2


def test_a_collector_killed_mid_send_sends_again_and_the_receiver_dedups(
    stack: E2EStack, images: ImageMaker
) -> None:
    receiver = receiver_of(stack)
    receiver.fail_next(1, HANG)  # the next POST, this job's event, is held open
    job_id = stack.upload_job(images.job(JOB_SIZE))
    wait_done(stack, job_id, DONE_S)
    deadline = time.monotonic() + 30
    while not receiver.for_job(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [r.answered for r in receiver.for_job(job_id)] == [HANG]
    kill(stack, "collector")  # SIGKILL, pool and all, while it waits for the answer
    restart(stack, "collector")

    wait_for_webhook(receiver, job_id, timeout_s=OUTBOX_LEASE_S + 60)
    received = receiver.for_job(job_id)
    assert [r.answered for r in received] == [HANG, 200]
    assert len({r.event_id for r in received}) == 1 and all(r.signature_ok for r in received)
    assert receiver.accepted_per_event(job_id) == {received[0].event_id: 1}  # after dedup: one
    row = delivery(stack, job_id)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
