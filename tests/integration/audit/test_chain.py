"""The chain on both backends: appends verify, events join the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import db.audit
from db.anchors import sign_head
from db.audit import GENESIS_HASH, append_event, verify_chain
from db.models import AuditEvent
from db.session import session_scope
from tests.integration.audit.helpers import (
    POSTGRES_ONLY,
    SIGNING_KEY,
    VERIFY_KEY,
    append_many,
    append_one,
)


def test_appends_verify_in_batches(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db.audit, "VERIFY_BATCH", 7)  # several pages, one partial
    append_many(session_factory, 25)
    with session_scope(session_factory) as session:
        report = verify_chain(session)
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert report.ok and report.events == 25 and report.head_seq == 25
    assert [e.seq for e in events] == list(range(1, 26))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in pairwise(events))
    assert report.head_hash == events[-1].hash


def test_empty_chain_verifies(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        report = verify_chain(session)
    assert (report.ok, report.events, report.head_seq, report.head_hash) == (
        True,
        0,
        0,
        GENESIS_HASH,
    )


def test_event_lives_and_dies_with_the_callers_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    append_many(session_factory, 2)
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        append_one(session, "rolled-back", 0)
        raise RuntimeError("the change being audited failed")
    append_many(session_factory, 1, tag="after")
    with session_scope(session_factory) as session:
        assert verify_chain(session).head_seq == 3
        actors = session.scalars(select(AuditEvent.actor).order_by(AuditEvent.seq)).all()
    assert "service:rolled-back" not in actors


@POSTGRES_ONLY
def test_append_does_not_commit(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as writer:
        append_one(writer, "pending", 0)
        with session_scope(session_factory) as reader:
            assert verify_chain(reader).events == 0  # not visible until the caller commits
    with session_scope(session_factory) as reader:
        assert verify_chain(reader).events == 1


def test_payload_stored_as_hashed(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        append_event(
            session,
            actor="service:t",
            action="x.y",
            object_type="job",
            object_id="j",
            payload={"list": (1, 2), "text": "日本語 ✓", "big": 2**62, "none": None},
        )
    with session_scope(session_factory) as session:
        event = session.scalars(select(AuditEvent)).one()
        assert event.payload == {"list": [1, 2], "text": "日本語 ✓", "big": 2**62, "none": None}
        assert verify_chain(session).ok


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"object_id": 5}, TypeError),
        ({"actor": "x" * 65}, ValueError),
        ({"action": ""}, ValueError),
        ({"payload": {"score": 0.5}}, TypeError),
        ({"payload": ["not", "a", "dict"]}, TypeError),
    ],
)
def test_bad_events_refused_before_writing(
    session_factory: sessionmaker[Session], fields: dict[str, object], error: type[Exception]
) -> None:
    event: dict[str, object] = {
        "actor": "service:t",
        "action": "x.y",
        "object_type": "job",
        "object_id": "j",
        "payload": {},
    }
    with pytest.raises(error), session_scope(session_factory) as session:
        append_event(session, **{**event, **fields})  # type: ignore[arg-type]


def test_database_refuses_update_and_delete(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    append_many(session_factory, 3)
    for sql in (
        "UPDATE audit_events SET payload = '{}' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    with session_scope(session_factory) as session:
        assert verify_chain(session).events == 3


@POSTGRES_ONLY
def test_postgres_refuses_truncate(session_factory: sessionmaker[Session], engine: Engine) -> None:
    append_many(session_factory, 2)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events CASCADE"))


OTHER_KEY = Ed25519PrivateKey.generate().public_key()


def test_good_anchors_pass_and_need_the_key(session_factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    empty = sign_head(0, GENESIS_HASH, now, SIGNING_KEY)
    append_many(session_factory, 6)
    with session_scope(session_factory) as session:
        head = verify_chain(session)
        anchors = [empty, sign_head(head.head_seq, head.head_hash, now, SIGNING_KEY)]
        assert verify_chain(session, anchors, key=VERIFY_KEY).ok
        with pytest.raises(ValueError, match="key"):
            verify_chain(session, anchors)
        wrong_key = verify_chain(session, anchors[1:], key=OTHER_KEY)
    assert (wrong_key.ok, wrong_key.first_bad_seq, wrong_key.reason) == (
        False,
        6,
        "anchor_mismatch",
    )


def test_anchor_beyond_head(session_factory: sessionmaker[Session]) -> None:
    append_many(session_factory, 2)
    forged = sign_head(9, "ab" * 32, datetime.now(UTC), SIGNING_KEY)
    with session_scope(session_factory) as session:
        report = verify_chain(session, [forged], key=VERIFY_KEY)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, 3, "anchor_beyond_head")


def test_appends_in_one_transaction_lock_and_read_the_head_once(
    session_factory: sessionmaker[Session],
) -> None:
    # A job's submission appends three events in one transaction: the first locks the chain
    # and reads its head, the others continue from the head they wrote themselves.
    append_many(session_factory, 1)
    statements: list[str] = []
    engine = session_factory.kw["bind"]

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with session_scope(session_factory) as session:
            for i in range(3):
                append_one(session, "same-transaction", i)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    head_reads = [s for s in statements if "FROM audit_events" in s]
    assert len(head_reads) == 1
    assert sum("pg_advisory_xact_lock" in s for s in statements) <= 1
    with session_scope(session_factory) as session:
        report = verify_chain(session)
    assert report.ok and report.head_seq == 4


def test_an_append_after_a_rolled_back_savepoint_reads_the_head_again(
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as session:
        append_one(session, "outer", 0)
        savepoint = session.begin_nested()
        append_one(session, "inner", 0)  # rolled back below: the chain must not build on it
        savepoint.rollback()
        append_one(session, "outer", 1)
    with session_scope(session_factory) as session:
        report = verify_chain(session)
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert report.ok
    assert [e.object_id for e in events] == ["outer-0", "outer-1"]
    assert events[1].prev_hash == events[0].hash
