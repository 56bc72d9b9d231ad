"""The session's after-commit hook, with real sends to a real Redis broker.

The queue is one no worker consumes, so the list's length is the number of messages sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.session import after_commit, session_scope
from workers.app import make_celery
from workers.enqueue_on_commit import enqueue_after_commit
from workers.queues import infer_queue

Factory = sessionmaker[Session]
PAIRS = [(1, "a" * 64), (2, "b" * 64), (3, "c" * 64)]


@pytest.fixture
def model_ref() -> str:
    return f"after-commit-{secrets.token_hex(4)}:1"


@pytest.fixture
def celery(redis_url: str) -> Iterator[Any]:
    app = make_celery(replace(Settings(env="test"), redis_url=redis_url))
    yield app
    app.close()


@pytest.fixture
def queued(redis_url: str, model_ref: str) -> Iterator[Any]:
    """How many messages wait in the model's queue now."""
    client = redis.Redis.from_url(redis_url)
    queue = infer_queue(model_ref.split(":")[0])
    yield lambda: client.llen(queue)
    client.delete(queue)
    client.close()


def test_a_rolled_back_transaction_sends_nothing(
    session_factory: Factory, celery: Any, model_ref: str, queued: Any
) -> None:
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        enqueue_after_commit(session, celery, "job-a", model_ref, PAIRS, chunk_size=1)
        raise RuntimeError("the request failed after its rows were written")
    assert queued() == 0


def test_a_committed_transaction_sends_exactly_once(
    session_factory: Factory, celery: Any, model_ref: str, queued: Any
) -> None:
    with session_scope(session_factory) as session:
        enqueue_after_commit(session, celery, "job-a", model_ref, PAIRS, chunk_size=2)
        assert queued() == 0  # nothing before the commit
        session.commit()  # the first commit sends; session_scope's own commit sends nothing more
        assert queued() == 2
    assert queued() == 2


def test_closing_without_commit_and_a_released_savepoint_send_nothing(
    session_factory: Factory, celery: Any, model_ref: str, queued: Any
) -> None:
    session = session_factory()
    with session.begin_nested():
        enqueue_after_commit(session, celery, "job-a", model_ref, PAIRS, chunk_size=1)
    assert queued() == 0  # a savepoint's release is not the commit
    session.close()
    assert queued() == 0
    session.commit()  # the same session's next transaction: the discarded sends stay discarded
    session.close()
    assert queued() == 0


def test_a_failing_callback_does_not_stop_the_others(session_factory: Factory) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise ConnectionError("broker down")

    with session_scope(session_factory) as session:
        after_commit(session, broken)
        after_commit(session, lambda: ran.append("second"))
    assert ran == ["broken", "second"]
