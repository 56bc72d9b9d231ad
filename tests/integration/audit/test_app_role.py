"""The application's database role cannot rewrite the audit chain (issue 9).

Before, the shipped deployment connected as the tables' owner, who may UPDATE the chain once the
triggers are disabled (ALTER TABLE ... DISABLE TRIGGER is the owner's right). With the grants of
``medflow db grant-app-role``, the application role works as before but cannot.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api.commands.db import db
from config.settings import Settings
from db.audit import append_event, verify_chain
from db.keys import create_key
from db.models import Role
from tests.integration.audit.helpers import POSTGRES_ONLY

pytestmark = POSTGRES_ONLY

REFUSED = [
    "UPDATE audit_events SET actor = 'service:intruder'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete",
    "SET session_replication_role = replica",
    "DROP TABLE audit_events",
]


@pytest.fixture
def app_role(migrated_settings: Settings, engine) -> Iterator[str]:
    role = f"medflow_app_{secrets.token_hex(4)}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    granted = CliRunner().invoke(
        db,
        ["grant-app-role", role],
        env={"MEDFLOW_DATABASE_URL": migrated_settings.database_url, "MEDFLOW_ENV": "test"},
    )
    assert granted.exit_code == 0, granted.output
    assert "GRANT SELECT, INSERT ON" in granted.output
    try:
        yield role
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


@pytest.fixture
def as_app(migrated_settings: Settings, app_role: str) -> Iterator[Session]:
    url = make_url(migrated_settings.database_url).set(username=app_role, password=None)
    app_engine = create_engine(url)
    try:
        with Session(app_engine) as session:
            yield session
    finally:
        app_engine.dispose()


def test_the_app_role_works_and_appends(as_app: Session) -> None:
    create_key(as_app, "made by the app role", Role.SUBMITTER)  # INSERTs a key and an event
    append_event(
        as_app, actor="service:test", action="test.appended", object_type="test",
        object_id="1", payload={"i": 1},
    )  # fmt: skip
    as_app.commit()
    report = verify_chain(as_app)
    assert report.ok and report.events == 2


@pytest.mark.parametrize("statement", REFUSED)
def test_the_app_role_cannot_change_the_chain(as_app: Session, statement: str) -> None:
    append_event(
        as_app, actor="service:test", action="test.appended", object_type="test",
        object_id="1", payload={"i": 1},
    )  # fmt: skip
    as_app.commit()
    with pytest.raises(DBAPIError) as refused:
        as_app.execute(text(statement))
    as_app.rollback()
    message = str(refused.value.orig)
    assert "permission denied" in message or "must be owner" in message, message
    assert verify_chain(as_app).ok


def test_grant_refuses_a_role_name_that_is_not_an_identifier(
    migrated_settings: Settings,
) -> None:
    env = {"MEDFLOW_DATABASE_URL": migrated_settings.database_url, "MEDFLOW_ENV": "test"}
    bad = CliRunner().invoke(db, ["grant-app-role", 'app"; DROP TABLE jobs; --'], env=env)
    assert bad.exit_code != 0 and "identifier" in bad.output
