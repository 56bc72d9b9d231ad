"""Migrations build the schema from empty, and the models never drift from them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic import command
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from db.models import Base
from db.session import alembic_config, check_drift, make_engine, upgrade

TABLES = {"api_keys", "model_versions", "jobs", "images", "audit_events"}


@pytest.fixture
def settings(database_url: str, settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(database_url=database_url)


def test_upgrade_from_empty_matches_models(settings: Settings) -> None:
    upgrade(settings)
    assert check_drift(settings) == []
    engine = make_engine(settings)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert head == _script_head(settings)
    finally:
        engine.dispose()


def test_a_model_column_without_migration_is_drift(settings: Settings) -> None:
    upgrade(settings)
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    metadata.tables["jobs"].append_column(Column("priority", Integer, nullable=True))
    diffs = check_drift(settings, metadata)
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "jobs", "priority")]


def test_downgrade_to_base_and_back(settings: Settings) -> None:
    upgrade(settings)
    command.downgrade(alembic_config(settings), "base")
    engine = make_engine(settings)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    upgrade(settings)
    assert check_drift(settings) == []


def test_status_columns_are_checked(migrated_settings: Settings) -> None:
    # The enums are VARCHAR + CHECK: the database itself refuses an unknown status.
    engine = make_engine(migrated_settings)
    try:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_keys (name, role, prefix, secret_hash, created_at) "
                    "VALUES ('x', 'superuser', 'p', 's', CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()


def _script_head(settings: Settings) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
    assert head is not None
    return head
