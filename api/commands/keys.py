"""`medflow keys`: create, list and revoke API keys (the token is printed once, at creation)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from config.settings import Settings
from db.keys import KeyNotFound, create_key, list_keys, revoke_key
from db.models import Role
from db.session import make_engine, make_session_factory, session_scope


def cli_actor() -> str:
    # The audit chain names the person at the terminal, as well as the OS can tell.
    return f"service:cli:{getpass.getuser()}"[:64]


@contextmanager
def cli_session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@click.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
def create(name: str, role: str) -> None:
    """Create a key; its token is shown once and never stored."""
    with cli_session(Settings.from_env()) as session:
        key, token = create_key(session, name, role, actor=cli_actor())
        key_id = key.id
    click.echo(f"key {key_id} ({role}) created; this token is shown only once:", err=True)
    click.echo(token)


@keys.command("list")
def list_() -> None:
    """List keys (never their tokens)."""
    with cli_session(Settings.from_env()) as session:
        for key in list_keys(session):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            click.echo(f"{key.id}\t{key.role.value}\tmf_{key.prefix}_…\t{state}\t{key.name}")


@keys.command("revoke")
@click.argument("key_id", type=int)
def revoke(key_id: int) -> None:
    """Revoke a key at once (idempotent)."""
    try:
        with cli_session(Settings.from_env()) as session:
            revoke_key(session, key_id, cli_actor())
    except KeyNotFound:
        raise click.ClickException(f"no key with id {key_id}") from None
    click.echo(f"key {key_id} revoked")
