"""Shared by the audit tests: fill a chain, and tamper with it as a Postgres superuser would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from db.audit import append_event
from db.session import session_scope

# Overrides conftest's sqlite/postgres parametrisation of `db_backend` for one test.
POSTGRES_ONLY = pytest.mark.parametrize(
    "db_backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
SECRET = "test-anchor-secret-0123456789abcdef"
# The anchors' Ed25519 key pair: the signer's private key, the verifier's public key.
SIGNING_KEY = Ed25519PrivateKey.generate()
VERIFY_KEY = SIGNING_KEY.public_key()


def append_many(factory: sessionmaker[Session], count: int, tag: str = "t") -> None:
    for i in range(count):
        with session_scope(factory) as session:
            append_one(session, tag, i)


def append_one(session: Session, tag: str, i: int) -> None:
    append_event(
        session,
        actor=f"service:{tag}",
        action="test.appended",
        object_type="test",
        object_id=f"{tag}-{i}",
        payload={"i": i, "tag": tag, "note": "ünïcode"},
    )


@contextmanager
def tamper(engine: Engine) -> Iterator[Connection]:
    """A superuser transaction with triggers off: what a DBA (or an intruder as one) can do."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield conn


def row(conn: Connection, seq: int) -> dict[str, Any]:
    found = conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq})
    return dict(found.mappings().one())
