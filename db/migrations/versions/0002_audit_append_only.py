"""audit_events is append-only: the database refuses UPDATE, DELETE and TRUNCATE

Revision ID: 0002_audit_append_only
Revises: 0001_initial

The hash chain detects tampering after the fact; these triggers stop it up front for every
session that is not a superuser (a superuser can disable triggers: the chain and its anchors
are what catch that). Postgres: one row-level BEFORE UPDATE OR DELETE trigger and one
statement-level BEFORE TRUNCATE trigger (TRUNCATE fires no row triggers). SQLite has no
TRUNCATE; a bare DELETE there fires row triggers too, because triggers disable its
truncate optimisation.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_audit_append_only"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_UP = [
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_no_update_delete
        BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate
        BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
]
PG_DOWN = [
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events",
    "DROP FUNCTION IF EXISTS audit_events_append_only()",
]
SQLITE_UP = [
    f"""
    CREATE TRIGGER audit_events_no_{verb.lower()}
        BEFORE {verb} ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: {verb} refused'); END
    """
    for verb in ("UPDATE", "DELETE")
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_events_no_update",
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
]


def _statements(up: bool) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return PG_UP if up else PG_DOWN
    if dialect == "sqlite":
        return SQLITE_UP if up else SQLITE_DOWN
    return []  # other databases are not supported by MedFlow; nothing to install


def upgrade() -> None:
    for statement in _statements(up=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(up=False):
        op.execute(statement)
