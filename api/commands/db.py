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


@db.command("grant-app-role")
@click.argument("role")
def grant_app_role_(role: str) -> None:
    """Grant ROLE what the application needs (run as the tables' owner, after each upgrade).

    ROLE may read and write every table, but only SELECT and INSERT audit_events; it owns
    nothing, so it cannot disable the audit triggers. Postgres only; the role must exist."""
    from db.roles import RoleError, grant_app_role
    from db.session import make_engine

    engine = make_engine(Settings.from_env())
    try:
        for statement in grant_app_role(engine, role):
            click.echo(statement)
    except RoleError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
