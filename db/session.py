"""Engines, sessions, the after-commit hook and the programmatic Alembic entry points.

Nothing here connects at import time; callers build an engine from a Settings object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from config.settings import Settings
from db.models import Base

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
# Connections kept per process. A gunicorn gthread worker runs up to api.stack.API_THREADS
# requests at once, each holding at most one connection (tests/unit/api/test_gunicorn_workers.py
# checks the two agree).
POOL_SIZE = 8
POOL_OVERFLOW = 4
# Execution option marking a read-only session (see make_read_session_factory).
READ_ONLY = "medflow_read_only"


def make_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return _sqlite_engine(settings.database_url)
    # pre-ping survives a restarted Postgres without a failed request.
    engine = create_engine(
        settings.database_url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_recycle=1800,
    )

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-only session runs in DBAPI autocommit: no BEGIN and no ROLLBACK round trip,
        # and each SELECT sees its own snapshot, as under READ COMMITTED anyway. The flag is
        # client-side (pre-ping flips it too); isolation_level="AUTOCOMMIT" would instead send
        # a SET on checkout and another on check-in.
        if conn.get_execution_options().get(READ_ONLY, False):
            conn.connection.dbapi_connection.autocommit = True

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, _record: Any) -> None:
        # Back to transactions for the connection's next user (None: it was invalidated).
        if dbapi_conn is not None and not dbapi_conn.closed and dbapi_conn.autocommit:
            dbapi_conn.autocommit = False

    return engine


def _sqlite_engine(url: str) -> Engine:
    # check_same_thread=False: the pool hands a connection to one thread at a time, but not
    # always the thread that opened it (gunicorn gthread workers, the collector's threads).
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so "begin" below decides the mode.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads then writes fails at once with SQLITE_BUSY when
        # another writer got there first (busy_timeout cannot help it); IMMEDIATE takes the
        # write lock up front, so concurrent writers queue on busy_timeout instead. A read-only
        # session takes no lock: in WAL mode it reads a snapshot and never blocks a writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay usable after commit: the API enqueues the sealed images after committing.
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only, on ``engine``'s pool; never write through one (see make_engine
    and _sqlite_engine: autocommit on Postgres, a deferred transaction on SQLite)."""
    return sessionmaker(
        engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False, autoflush=False
    )


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, rollback on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


AFTER_COMMIT = "medflow_after_commit"  # the session.info key of the pending callbacks


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once, after ``session``'s transaction commits; never if it rolls back.

    For what must follow a commit but cannot be part of it: sending a Celery task whose rows
    this transaction writes (a task that outran its rows would find nothing), setting a Redis
    flag. Callbacks run in the order registered, after the root transaction commits (releasing
    a savepoint is not a commit). A callback that raises is logged and the others still run:
    the commit stands, and whatever was not sent is recovered from the rows (the reconciler).
    Registered inside a savepoint, a callback belongs to the root transaction.
    """
    if not event.contains(session, "after_commit", _run_after_commit):
        event.listen(session, "after_commit", _run_after_commit)
        event.listen(session, "after_transaction_end", _discard_after_rollback)
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the root transaction may still roll back
    for callback in session.info.pop(AFTER_COMMIT, []):
        try:
            callback()
        except Exception as exc:
            log.warning(
                "after-commit %s failed (%s)",
                getattr(callback, "__name__", "callback"),
                type(exc).__name__,
            )


def _discard_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    # The root transaction ended without the commit above having taken the list (rollback,
    # or close() without commit): what it asked for must never happen.
    if transaction.parent is None:
        session.info.pop(AFTER_COMMIT, None)


def alembic_config(settings: Settings) -> Config:
    """An Alembic Config pointing at the packaged migrations; env.py reads the Settings."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def check_drift(settings: Settings, metadata: MetaData | None = None) -> list[Any]:
    """The differences between the models (db.models by default) and the database.

    Empty means none; otherwise Alembic's diff tuples, e.g. ``("add_column", ...)``.
    """
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": settings.is_sqlite}
            )
            return list(compare_metadata(context, metadata or Base.metadata))
    finally:
        engine.dispose()
