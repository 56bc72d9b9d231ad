"""Engines, sessions and the programmatic Alembic entry points (upgrade, drift check).

Nothing here connects at import time; callers build an engine from a Settings object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from db.models import Base
from db.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return _sqlite_engine(settings.database_url)
    # Modest pool: a gunicorn worker or the collector needs a handful of connections at most,
    # and pre-ping survives a restarted Postgres without a failed request.
    return create_engine(
        settings.database_url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_recycle=1800
    )


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
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
        # write lock up front, so concurrent writers queue on busy_timeout instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay usable after commit: the API enqueues the sealed images after committing.
    return sessionmaker(engine, expire_on_commit=False)


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
