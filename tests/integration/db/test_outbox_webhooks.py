"""Webhooks from the outbox, on SQLite and Postgres, to a real HTTP server started here.

The dispatcher (``dispatch_due``, what ``medflow.dispatch_outbox`` runs) is called directly so
each step is exact; tests/faults/test_webhooks.py runs it in the stack's collector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.collect import record_results
from db.jobs import cancel_job
from db.models import Job, OutboxEvent, OutboxStatus, utcnow
from db.session import session_scope
from messages.scored_image import ScoredImage
from messages.webhook_signature import EVENT_TYPE_HEADER
from tests.webhook_receiver import WebhookReceiver
from workers import metrics
from workers.tasks.outbox import dispatch_due
from workers.webhook_post import post

Factory = sessionmaker[Session]
MakeJob = Callable[..., tuple[Job, list[Any]]]
SECRET_ENV = "MEDFLOW_TEST_WEBHOOK_SECRET"
SECRET = "whsec-test-0123456789abcdef"
SUBSCRIBER = "webhook:ris:job.finished"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def hooked(migrated_settings: Settings, receiver: WebhookReceiver) -> Settings:
    endpoints = (
        f'{{"ris": {{"url": "{receiver.url}/hooks/medflow", "secret_env": "{SECRET_ENV}"}}}}'
    )
    settings = replace(
        migrated_settings,
        webhooks=endpoints,
        webhook_allow=f"{receiver.url}/hooks/",
        public_url="https://medflow.example.org/",
    )
    settings.check()
    return settings


def cancel(session_factory: Factory, job: Job) -> None:
    with session_scope(session_factory) as session:
        cancel_job(session, job, "key:1")


def make_due(session_factory: Factory) -> None:
    with session_scope(session_factory) as session:
        session.execute(update(OutboxEvent).values(next_attempt_at=utcnow()))


def delivery_row(session_factory: Factory) -> OutboxEvent:
    with session_scope(session_factory) as session:
        return session.scalars(select(OutboxEvent).filter_by(subscriber=SUBSCRIBER)).one()


def test_a_finished_job_is_posted_once_signed_with_ids_counts_and_links(
    hooked: Settings, receiver: WebhookReceiver, session_factory: Factory, make_job: MakeJob
) -> None:
    job, images = make_job(3)
    with session_scope(session_factory) as session:
        record_results(session, job.id, [ScoredImage.failure(images[0].id, "DECODE_FAILED", "x")])
        cancel_job(session, job, "key:1")
    sent = metrics.WEBHOOK_DELIVERIES.labels("ris", "sent")._value.get()

    assert dispatch_due(hooked) == 1
    assert dispatch_due(hooked) == 0  # acknowledged: never sent again

    (got,) = receiver.received
    assert got.signature_ok and got.path == "/hooks/medflow"
    assert got.headers[EVENT_TYPE_HEADER] == "job.finished"
    body = got.json
    assert body["id"] == got.event_id and body["type"] == "job.finished"
    link = f"https://medflow.example.org/v1/jobs/{job.id}"
    assert body["data"] == {
        "job_id": job.id,
        "status": "cancelled",
        "model": "nodule-detector",
        "version": "1",
        "model_ref": f"nodule-detector:1@{'ab' * 32}",
        "total": 3,
        "succeeded": 0,
        "failed": 1,
        "cancelled": 2,
        "finished_at": body["created_at"],
        "links": {"job": link, "results": f"{link}/results"},
    }
    assert "owner_key_id" not in got.body.decode()  # MedFlow's own ids stay inside
    assert metrics.WEBHOOK_DELIVERIES.labels("ris", "sent")._value.get() == sent + 1
    row = delivery_row(session_factory)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 1, None)


def test_a_500_is_retried_with_backoff_then_sent(
    hooked: Settings, receiver: WebhookReceiver, session_factory: Factory, make_job: MakeJob
) -> None:
    job, _ = make_job(1)
    cancel(session_factory, job)
    receiver.fail_next(1, 500)
    failed = metrics.WEBHOOK_DELIVERIES.labels("ris", "failed")._value.get()

    before = utcnow()
    assert dispatch_due(hooked) == 0
    row = delivery_row(session_factory)
    assert (row.status, row.attempts, row.last_error) == (
        OutboxStatus.PENDING,
        1,
        "WebhookDeliveryError: endpoint ris answered HTTP 500",  # no response body, no PHI
    )
    assert (row.next_attempt_at - before).total_seconds() >= hooked.outbox_backoff_s - 1
    assert dispatch_due(hooked) == 0 and len(receiver.received) == 1  # not due yet
    make_due(session_factory)
    assert dispatch_due(hooked) == 1

    assert [r.answered for r in receiver.received] == [500, 200]
    assert len({r.event_id for r in receiver.received}) == 1  # the same event, twice
    assert all(r.signature_ok for r in receiver.received)
    assert metrics.WEBHOOK_DELIVERIES.labels("ris", "failed")._value.get() == failed + 1
    assert delivery_row(session_factory).status == OutboxStatus.SENT


def test_a_redirect_is_not_followed(
    hooked: Settings, receiver: WebhookReceiver, session_factory: Factory, make_job: MakeJob
) -> None:
    elsewhere = WebhookReceiver(SECRET).start()  # would be contacted if the sender followed
    try:
        receiver.redirect_to = f"{elsewhere.url}/stolen"
        receiver.fail_next(1, 302)
        job, _ = make_job(1)
        cancel(session_factory, job)
        assert dispatch_due(hooked) == 0
    finally:
        elsewhere.stop()
    assert elsewhere.received == []
    assert "HTTP 302 (redirects are not followed)" in str(delivery_row(session_factory).last_error)


def test_a_rolled_back_close_sends_nothing_and_a_committed_one_exactly_once(
    hooked: Settings, receiver: WebhookReceiver, session_factory: Factory, make_job: MakeJob
) -> None:
    job, _ = make_job(1)
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        cancel_job(session, job, "key:1")
        raise RuntimeError("the request failed after the close was written")
    assert dispatch_due(hooked) == 0
    assert receiver.received == []

    cancel(session_factory, job)
    assert dispatch_due(hooked) == 1
    make_due(session_factory)  # even when everything is due again, a sent row stays sent
    assert dispatch_due(hooked) == 0
    assert [r.json["data"]["job_id"] for r in receiver.received] == [job.id]


def test_a_receiver_that_never_answers_times_out() -> None:
    silent = WebhookReceiver(SECRET)
    silent._server.RequestHandlerClass.do_POST = lambda self: time.sleep(3)  # type: ignore[method-assign]
    silent.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            post(f"{silent.url}/", b"{}", {}, connect_s=1, read_s=0.5)
    finally:
        silent.stop()
    assert time.monotonic() - started < 2.5
