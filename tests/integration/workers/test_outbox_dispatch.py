"""The outbox dispatcher against a real database: retries with backoff, records the outcome,
and keeps each subscriber's delivery apart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from config.settings import Settings
from db import outbox
from db.models import OutboxEvent, OutboxStatus, utcnow
from db.session import session_scope
from workers import db_sessions, outbox_handlers
from workers.tasks.outbox import BACKOFF_BASE_S, dispatch_due

KIND = "test.flaky"


class FlakyReceiver:
    """Refuses the first ``failures`` deliveries, then accepts; remembers what it saw."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: list[tuple[str, int]] = []

    def __call__(self, message: outbox.OutboxMessage, settings: Settings) -> None:
        self.seen.append((message.payload["event_id"], message.attempts))
        if len(self.seen) <= self.failures:
            raise ConnectionError("receiver answered 503")


def subscribed(name: str, failures: int) -> Iterator[FlakyReceiver]:
    found = FlakyReceiver(failures)
    outbox_handlers.subscribe(KIND, name, found)
    yield found
    outbox_handlers.unregister(name)


@pytest.fixture
def receiver() -> Iterator[FlakyReceiver]:
    yield from subscribed("flaky", failures=2)


@pytest.fixture
def steady() -> Iterator[FlakyReceiver]:
    yield from subscribed("steady", failures=0)


def row(settings: Settings, source_id: int, subscriber: str = "flaky") -> OutboxEvent:
    """The delivery row of ``subscriber`` for the fact ``source_id``."""
    with session_scope(db_sessions.session_factory(settings)) as session:
        query = select(OutboxEvent).filter_by(source_id=source_id, subscriber=subscriber)
        return session.scalars(query).one()


def make_due(settings: Settings) -> None:
    with session_scope(db_sessions.session_factory(settings)) as session:
        session.execute(update(OutboxEvent).values(next_attempt_at=utcnow()))


def test_a_failing_handler_is_retried_with_growing_backoff_until_sent(
    migrated_settings: Settings, receiver: FlakyReceiver
) -> None:
    with session_scope(db_sessions.session_factory(migrated_settings)) as session:
        event_id = outbox.add(session, KIND, {"job_id": "j1"}).id
    delays = []
    for _ in range(2):
        before = utcnow()
        assert dispatch_due(migrated_settings) == 0
        failed = row(migrated_settings, event_id)
        assert (failed.status, failed.last_error) == (
            OutboxStatus.PENDING,
            "ConnectionError: receiver answered 503",
        )
        delays.append(failed.next_attempt_at - before)
        assert dispatch_due(migrated_settings) == 0  # not due yet: the handler is not called
        make_due(migrated_settings)
    assert timedelta(seconds=BACKOFF_BASE_S) <= delays[0] < timedelta(seconds=BACKOFF_BASE_S + 5)
    assert timedelta(seconds=2 * BACKOFF_BASE_S) <= delays[1] < delays[0] * 2 + timedelta(seconds=5)

    assert dispatch_due(migrated_settings) == 1
    sent = row(migrated_settings, event_id)
    assert (sent.status, sent.attempts, sent.last_error) == (OutboxStatus.SENT, 3, None)
    assert [attempt for _, attempt in receiver.seen] == [1, 2, 3]
    assert len({event for event, _ in receiver.seen}) == 1  # one event_id for every attempt
    assert dispatch_due(migrated_settings) == 0  # sent once: never again


def test_each_subscriber_has_its_own_delivery_state(
    migrated_settings: Settings, receiver: FlakyReceiver, steady: FlakyReceiver
) -> None:
    with session_scope(db_sessions.session_factory(migrated_settings)) as session:
        event_id = outbox.add(session, KIND, {"job_id": "j1"}).id
    assert dispatch_due(migrated_settings) == 1  # steady took it, flaky refused
    for _ in range(2):
        make_due(migrated_settings)
        dispatch_due(migrated_settings)
    assert row(migrated_settings, event_id, "flaky").status == OutboxStatus.SENT
    assert (row(migrated_settings, event_id, "steady").attempts, len(steady.seen)) == (1, 1)
    assert len(receiver.seen) == 3  # flaky's retries never resent to steady
    assert steady.seen[0][0] == receiver.seen[0][0]  # one event_id for both


def test_kinds_without_a_subscriber_wait(migrated_settings: Settings, receiver: Any) -> None:
    with session_scope(db_sessions.session_factory(migrated_settings)) as session:
        waiting = outbox.add(session, "nobody.handles", {}).id
    dispatch_due(migrated_settings)
    with session_scope(db_sessions.session_factory(migrated_settings)) as session:
        untouched = session.get_one(OutboxEvent, waiting)
        assert (untouched.status, untouched.attempts) == (OutboxStatus.PENDING, 0)
        assert session.scalars(select(OutboxEvent).filter_by(source_id=waiting)).all() == []


def test_one_name_twice_is_refused(migrated_settings: Settings, receiver: Any) -> None:
    outbox_handlers.add_source(
        "again", lambda _s: [outbox_handlers.Subscription(KIND, "flaky", receiver)]
    )
    try:
        with pytest.raises(ValueError, match="flaky"):
            dispatch_due(migrated_settings)
    finally:
        outbox_handlers.unregister("again")
