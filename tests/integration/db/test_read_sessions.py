"""Read-only sessions (db.session.make_read_session_factory), which serve every status poll: an
open one never makes a writer wait, and the connection it used goes back to the pool in
ordinary transactional mode."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.keys import create_key
from db.models import ApiKey, Role
from db.session import make_read_session_factory, session_scope

Factory = sessionmaker[Session]


def count_keys(factory: Factory) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(ApiKey)) or 0)


def test_an_open_read_does_not_block_a_writer(session_factory: Factory) -> None:
    readers = make_read_session_factory(session_factory.kw["bind"])
    with readers() as reader:
        assert reader.scalar(select(func.count()).select_from(ApiKey)) == 0
        done = threading.Event()

        def write() -> None:
            with session_scope(session_factory) as session:
                create_key(session, "writer", Role.ADMIN)
            done.set()

        # Another thread, as another gunicorn thread would be. SQLite's "BEGIN IMMEDIATE"
        # for the read would make this writer wait out the 30 s busy timeout.
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert done.wait(timeout=10), "the writer waited for a read-only session"
        writer.join()
    assert count_keys(session_factory) == 1


def test_the_pooled_connection_is_transactional_again(session_factory: Factory) -> None:
    readers = make_read_session_factory(session_factory.kw["bind"])
    with readers() as reader:
        reader.scalar(select(func.count()).select_from(ApiKey))
    # The next user of (very likely) the same pooled connection still gets a transaction: an
    # error rolls its writes back.
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        create_key(session, "rolled back", Role.ADMIN)
        session.flush()
        raise RuntimeError("abort")
    assert count_keys(session_factory) == 0
