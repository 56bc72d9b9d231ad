"""The application's database role: everything it needs, and no way to rewrite the audit chain.

Migrations run as the owner of the tables. The API, the collector and the reconciler connect as
a separate application role (``MEDFLOW_DATABASE_URL``) granted here, by the owner, after each
upgrade (``medflow db grant-app-role ROLE``):

- reads and writes on every table, but on ``audit_events`` only SELECT and INSERT (the
  append-only triggers refuse UPDATE, DELETE and TRUNCATE too: two locks, not one);
- it owns nothing, so it cannot ``ALTER TABLE ... DISABLE TRIGGER`` (owner only), and it is not
  a superuser, so it cannot ``SET session_replication_role = replica`` either.

Postgres only (SQLite has no roles). The role itself is created by the deployment (it holds the
password); this grants, idempotently, and revokes whatever else it may have had on the chain.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
AUDIT_TABLE = "audit_events"


class RoleError(ValueError):
    """The role name is not a plain identifier, or the database has no roles."""


def grant_statements(role: str, schema: str) -> list[str]:
    if not _ROLE.fullmatch(role):
        raise RoleError("the role must be a lower-case identifier (letters, digits, _)")
    r, s = f'"{role}"', f'"{schema}"'
    return [
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        f"REVOKE ALL ON {s}.{AUDIT_TABLE} FROM {r}",
        f"GRANT SELECT, INSERT ON {s}.{AUDIT_TABLE} TO {r}",
    ]


def grant_app_role(engine: Engine, role: str) -> list[str]:
    """Run the grants as the connected (owner) role, in one transaction; returns them."""
    if engine.dialect.name != "postgresql":
        raise RoleError("database roles are a Postgres feature; SQLite has none")
    with engine.begin() as conn:
        schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
        statements = grant_statements(role, schema)
        for statement in statements:
            conn.execute(text(statement))
    return statements
