"""API keys: ``mf_<prefix>_<secret>``, shown once, stored as the prefix and sha256(secret).

The prefix (12 hex characters, not secret) finds the row; the secret (``token_urlsafe(32)``,
256 random bits) proves the key. A fast hash is enough here: slow password hashes (bcrypt,
argon2) exist to make guessing low-entropy passwords expensive, and nobody can enumerate 2**256
secrets, so they would only add latency to every request. The database never holds anything
that authenticates by itself. Creating and revoking a key are audit events; their payloads
name the key (id, name, role) but never carry the token or its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.audit import append_event
from db.models import ApiKey, Role

TOKEN_PREFIX = "mf"
CLI_ACTOR = "service:cli"


# What authenticating needs of a key row, read as plain columns: every request does this, and
# loading an ApiKey entity (identity map, instance state) costs twice as much as the row.
_LOOKUP = select(
    ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.prefix, ApiKey.secret_hash, ApiKey.revoked_at
)


class KeyNotFound(LookupError):
    """No API key has that id."""


@dataclass(frozen=True)
class LiveKey:
    """A key that authenticated: who it is, never its secret hash."""

    id: int
    name: str
    role: Role
    prefix: str


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(
    session: Session, name: str, role: Role | str, *, actor: str = CLI_ACTOR
) -> tuple[ApiKey, str]:
    """A new key and its token; the token exists only in the return value."""
    role = Role(role)
    if not name or len(name) > 200:
        raise ValueError("a key name must be 1 to 200 characters")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(name=name, role=role, prefix=prefix, secret_hash=_hash_secret(secret))
    session.add(key)
    session.flush()  # the id goes into the audit event
    _audit(session, key, "key.created", actor)
    return key, f"{TOKEN_PREFIX}_{prefix}_{secret}"


def revoke_key(session: Session, key_id: int, actor: str) -> ApiKey:
    """Revoke a key (idempotent: revoking a revoked key changes and records nothing)."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise KeyNotFound(key_id)
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.flush()
        _audit(session, key, "key.revoked", actor)
    return key


def authenticate(session: Session, token: str) -> LiveKey | None:
    """The live key this token proves, or None (malformed, unknown, wrong secret, revoked).

    Read from the database every time (no cache): a revocation holds from the next request on.
    """
    parts = token.split("_", 2) if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    key = session.execute(_LOOKUP.where(ApiKey.prefix == parts[1])).first()
    # Hash even for an unknown prefix, so timing tells nothing beyond "prefix exists".
    presented = _hash_secret(parts[2])
    stored = key.secret_hash if key is not None else "0" * 64
    if key is None or not hmac.compare_digest(presented, stored) or key.revoked_at is not None:
        return None
    return LiveKey(id=key.id, name=key.name, role=Role(key.role), prefix=key.prefix)


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def _audit(session: Session, key: ApiKey, action: str, actor: str) -> None:
    payload = {"key_id": key.id, "name": key.name, "role": str(key.role)}
    append_event(
        session,
        actor=actor,
        action=action,
        object_type="api_key",
        object_id=str(key.id),
        payload=payload,
    )
