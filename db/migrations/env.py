"""Alembic environment: the database comes from the Settings object, never from alembic.ini.

`db.session.upgrade(settings)` passes the Settings in ``config.attributes["settings"]``; the
`alembic` command line (``alembic -c db/alembic.ini ...``) falls back to the environment.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, text

from config.settings import Settings
from db.models import Base, UTCDateTime
from db.session import make_engine

# An arbitrary constant: the key of the advisory lock that serialises concurrent upgrades
# (`medflow up` and the API may both migrate at start-up).
MIGRATION_LOCK_KEY = 7_461_236_102

config = context.config
settings: Settings = config.attributes.get("settings") or Settings.from_env()


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Autogenerate would write `db.models.UTCDateTime()`: migrations stay free of model imports.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_item=_render_item,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    context.configure(
        url=settings.database_url,
        target_metadata=Base.metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=settings.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Transaction-scoped: released by the migration's own commit.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
