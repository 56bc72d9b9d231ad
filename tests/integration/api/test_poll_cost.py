"""What one status poll costs: one database connection, two SELECTs (the key, the job) without
a transaction around them, one Redis command for the rate limit; and nothing cached, so a
revoked key is refused at once by every app (every gunicorn process)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from sqlalchemy import Engine, event

from api.app import create_app
from api.extensions import services
from db.keys import revoke_key
from db.session import session_scope


@dataclass
class Trace:
    """Connections checked out and statements run on one engine while it is watched."""

    checkouts: int = 0
    held: int = 0
    most_held: int = 0
    statements: list[str] = field(default_factory=list)
    autocommit: list[bool] = field(default_factory=list)  # Postgres: per statement
    autocommit_at_checkin: list[bool] = field(default_factory=list)

    def selects(self) -> list[str]:
        return [s.split(" FROM ")[1].split()[0] for s in self.statements if s.startswith("SELECT")]


def engine_of(app: Any) -> Engine:
    with app.app_context():
        engine: Engine = services().sessions.kw["bind"]
    return engine


@pytest.fixture
def trace(app: Any) -> Iterator[Trace]:
    engine, found = engine_of(app), Trace()
    postgres = engine.dialect.name == "postgresql"

    def checkout(*_: Any) -> None:
        found.checkouts += 1
        found.held += 1
        found.most_held = max(found.most_held, found.held)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        found.held -= 1
        if postgres and dbapi_conn is not None:
            found.autocommit_at_checkin.append(dbapi_conn.autocommit)

    def statement(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        found.statements.append(" ".join(sql.split()))
        if postgres:
            found.autocommit.append(conn.connection.dbapi_connection.autocommit)

    listeners = [
        (engine, "checkout", checkout),
        (engine, "checkin", checkin),
        (engine, "before_cursor_execute", statement),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    yield found
    for target, name, fn in listeners:
        event.remove(target, name, fn)


def test_a_poll_uses_one_connection_and_two_selects(client, keys, make_job, trace):
    job = make_job(2)
    response = client.get(f"/v1/jobs/{job.id}", headers=keys.auth("operator"))
    assert response.status_code == 200
    assert (trace.checkouts, trace.most_held, trace.held) == (1, 1, 0)
    assert trace.selects() == ["api_keys", "jobs"]
    # No transaction around the reads: no write lock on SQLite, autocommit on Postgres, and the
    # pooled connection goes back to transactions for the next user.
    assert not any("IMMEDIATE" in s or s.startswith("COMMIT") for s in trace.statements)
    assert all(trace.autocommit)
    assert not any(trace.autocommit_at_checkin)


def test_a_writing_view_never_holds_two_connections(client, keys, make_job, trace):
    job = make_job(2)
    response = client.get(f"/v1/jobs/{job.id}/results", headers=keys.auth("submitter"))
    assert response.status_code == 200  # and a results.read audit event was written
    # The key's read session is closed before the view opens its own transaction.
    assert (trace.checkouts, trace.most_held, trace.held) == (2, 1, 0)


@pytest.mark.parametrize("authorization", ["Bearer mf_abc_def", "Bearer nope"])
def test_refused_keys_leave_no_connection_out(client, trace, authorization):
    response = client.get("/v1/jobs", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert trace.held == 0


def test_revocation_holds_at_once_in_every_process(env, keys):
    # Two apps stand for two gunicorn processes: each has authenticated the key before.
    apps = [create_app(env.settings).test_client() for _ in range(2)]
    auth = keys.auth("submitter")
    assert [c.get("/v1/jobs", headers=auth).status_code for c in apps] == [200, 200]
    with session_scope(env.sessions) as session:
        revoke_key(session, keys.ids["submitter"], "service:test")
    assert [c.get("/v1/jobs", headers=auth).status_code for c in apps] == [401, 401]


def test_the_rate_limit_costs_one_redis_command(app, client, keys, make_job, monkeypatch):
    job = make_job(1)
    sent: dict[str, list[str]] = {"limiter": [], "app": []}
    with app.app_context():
        clients = {"limiter": services().limiter._hit.registered_client, "app": services().redis}
    for name, redis_client in clients.items():
        original = redis_client.execute_command

        def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            sent[_name].append(str(args[0]))
            return _original(*args, **kw)

        monkeypatch.setattr(redis_client, "execute_command", counted)
    first = client.get(f"/v1/jobs/{job.id}", headers=keys.auth("operator"))
    second = client.get(f"/v1/jobs/{job.id}", headers=keys.auth("operator"))
    assert sent == {"limiter": ["EVALSHA", "EVALSHA"], "app": []}
    assert first.headers["X-RateLimit-Limit"] == "100000"
    left = [int(r.headers["X-RateLimit-Remaining"]) for r in (first, second)]
    assert left[0] - left[1] == 1
    assert int(first.headers["X-RateLimit-Reset"]) > 0


def test_the_tightest_of_several_windows_applies(env, keys):
    client = create_app(replace(env.settings, rate_limit="1000/hour;2/minute")).test_client()
    responses = [client.get("/v1/jobs", headers=keys.auth("admin")) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "2"
    assert int(responses[2].headers["Retry-After"]) > 0


def test_the_rate_limit_fails_open_without_redis(env, keys):
    client = create_app(replace(env.settings, redis_url="redis://127.0.0.1:1/0")).test_client()
    response = client.get("/v1/jobs", headers=keys.auth("operator"))
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response.headers
