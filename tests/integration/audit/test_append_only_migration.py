"""Migration 0002 installs the append-only triggers, and its downgrade removes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from config.settings import Settings
from db.session import alembic_config, make_engine, upgrade

INSERT = (
    "INSERT INTO audit_events (seq, occurred_at, actor, action, object_type, object_id,"
    " payload, prev_hash, hash) VALUES (1, :at, 'a', 'b', 'c', 'd', '{}', :zero, :zero)"
)


def test_upgrade_installs_and_downgrade_drops(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(database_url=database_url)
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            conn.execute(text(INSERT), {"at": datetime.now(UTC), "zero": "0" * 64})
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'x'"))
        command.downgrade(alembic_config(settings), "0001_initial")
        with engine.begin() as conn:  # without the triggers, nothing stops an edit
            conn.execute(text("UPDATE audit_events SET actor = 'x'"))
            conn.execute(text("DELETE FROM audit_events"))
        upgrade(settings)
        with engine.begin() as conn:
            conn.execute(text(INSERT), {"at": datetime.now(UTC), "zero": "0" * 64})
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))
    finally:
        engine.dispose()
