"""`medflow db upgrade` and `medflow db check` on SQLite and Postgres."""

from __future__ import annotations

from click.testing import CliRunner

from api.commands.db import db


def test_upgrade_then_check(database_url: str) -> None:
    runner = CliRunner()
    env = {"MEDFLOW_DATABASE_URL": database_url, "MEDFLOW_ENV": "test"}
    before = runner.invoke(db, ["check"], env=env)
    assert before.exit_code == 1  # an empty database lacks every table
    upgraded = runner.invoke(db, ["upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    again = runner.invoke(db, ["upgrade"], env=env)  # idempotent
    assert again.exit_code == 0, again.output
    checked = runner.invoke(db, ["check"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "no drift" in checked.output
