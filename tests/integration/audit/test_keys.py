"""API keys: shown once, stored as a hash, refused once revoked, audited without secrets."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.audit import verify_chain
from db.keys import KeyNotFound, authenticate, create_key, list_keys, revoke_key
from db.models import AuditEvent, Role
from db.session import session_scope


def test_create_authenticate_revoke(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        key, token = create_key(session, "radiology-pacs", Role.SUBMITTER)
        key_id = key.id
    assert token.startswith(f"mf_{key.prefix}_")
    with session_scope(session_factory) as session:
        found = authenticate(session, token)
        assert found is not None and (found.id, found.role) == (key_id, Role.SUBMITTER)
    with session_scope(session_factory) as session:
        revoked = revoke_key(session, key_id, "key:1")
        assert revoked.revoked_at is not None
        revoke_key(session, key_id, "key:1")  # idempotent: no second event
    with session_scope(session_factory) as session:
        assert authenticate(session, token) is None
        assert [k.id for k in list_keys(session)] == [key_id]
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
        assert actions == ["key.created", "key.revoked"]
        assert verify_chain(session).ok


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "mf_000000000000_" + t.split("_", 2)[2],  # unknown prefix
        lambda t: t.replace("mf_", "xx_", 1),
        lambda t: t.rsplit("_", 1)[0] + "_",
        lambda t: "",
        lambda t: "mf__",
    ],
)
def test_wrong_or_malformed_tokens_refused(
    session_factory: sessionmaker[Session], mangle: object
) -> None:
    with session_scope(session_factory) as session:
        _, token = create_key(session, "k", "auditor")
        assert authenticate(session, mangle(token)) is None  # type: ignore[operator]


def test_token_never_stored_in_clear(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    with session_scope(session_factory) as session:
        key, token = create_key(session, "ops", Role.OPERATOR)
        key_id = key.id
    with session_scope(session_factory) as session:
        revoke_key(session, key_id, "service:test")
    secret = token.split("_", 2)[2]
    secret_hash = hashlib.sha256(secret.encode()).hexdigest()
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
        events = conn.execute(text("SELECT * FROM audit_events")).mappings().all()
    assert keys[0]["secret_hash"] == secret_hash
    assert not any(secret in str(value) for value in keys[0].values())
    for event in events:
        dumped = str(dict(event))
        assert secret not in dumped and secret_hash not in dumped
        payload = event["payload"]  # raw SQL: text on SQLite, parsed on Postgres
        payload = json.loads(payload) if isinstance(payload, str) else payload
        assert payload == {"key_id": key_id, "name": "ops", "role": "operator"}


def test_revoking_unknown_key_and_unknown_role(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        with pytest.raises(KeyNotFound):
            revoke_key(session, 999, "service:test")
        with pytest.raises(ValueError):
            create_key(session, "k", "superuser")
