"""`medflow db`: migrate the database to the latest schema, or check it against the models."""

from __future__ import annotations

import click

from config.settings import Settings
from db.session import check_drift, upgrade


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision.")
def upgrade_(revision: str) -> None:
    """Apply the migrations up to REVISION (safe to run again, and from two places at once)."""
    upgrade(Settings.from_env(), revision)
    click.echo(f"database at {revision}")


@db.command("check")
def check() -> None:
    """Exit 1 when the models and the migrated database differ (a migration is missing)."""
    diffs = check_drift(Settings.from_env())
    for diff in diffs:
        click.echo(f"drift: {diff}", err=True)
    if diffs:
        raise SystemExit(1)
    click.echo("no drift: the database matches the models")
