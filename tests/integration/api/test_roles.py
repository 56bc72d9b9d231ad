"""The role matrix: every endpoint x every role (and no key) x own or another's job.

One database per backend serves the whole table (a fresh job per case), so hundreds of cases
stay fast on Postgres. Every expected error also asserts its code: a case must never pass on a
401 or a 404 that happened for another reason.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.readiness import monitor
from config.settings import Settings
from db.session import make_engine, make_session_factory, upgrade
from tests.conftest import BACKENDS
from tests.integration.api.conftest import MODEL, PNG, Env, api_settings_for, build_env, copy_sqlite

WHO = ("submitter", "other", "operator", "auditor", "admin", None)
CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "JOB_NOT_FOUND", 400: "VALIDATION_ERROR"}

# endpoint: (method, path, body, expected status for WHO in order)
# Job paths name a job owned by "submitter": for "other" it is another submitter's job.
TABLE: dict[str, tuple[str, str, str | None, tuple[int, ...]]] = {
    "create job": ("POST", "/v1/jobs", "open", (202, 202, 403, 403, 202, 401)),
    "list jobs": ("GET", "/v1/jobs", None, (200, 200, 200, 403, 200, 401)),
    "show job": ("GET", "/v1/jobs/{job}", None, (200, 404, 200, 403, 200, 401)),
    "results": ("GET", "/v1/jobs/{job}/results", None, (200, 404, 403, 403, 200, 401)),
    "results csv": (
        "GET",
        "/v1/jobs/{job}/results?format=csv",
        None,
        (200, 404, 403, 403, 200, 401),
    ),
    "add images": ("POST", "/v1/jobs/{job}/images", "files", (200, 404, 403, 403, 200, 401)),
    "seal": ("POST", "/v1/jobs/{job}/seal", None, (200, 404, 403, 403, 200, 401)),
    "cancel": ("POST", "/v1/jobs/{job}/cancel", None, (200, 404, 200, 403, 200, 401)),
    # No worker serves the model here: a short timeout_s makes it a 202 (the job to poll).
    "infer": ("POST", "/v1/infer", "infer", (202, 202, 403, 403, 202, 401)),
    "list models": ("GET", "/v1/models", None, (200, 200, 200, 403, 200, 401)),
    # An empty upload: 400 proves the admin got past authorisation without registering anything.
    "register model": ("POST", "/v1/models", "files", (403, 403, 403, 403, 400, 401)),
    "audit verify": ("GET", "/v1/audit/verify", None, (403, 403, 403, 200, 200, 401)),
    "audit events": ("GET", "/v1/audit/events", None, (403, 403, 403, 200, 200, 401)),
    "healthz": ("GET", "/healthz", None, (200,) * 6),
    "metrics": ("GET", "/metrics", None, (200,) * 6),
    # Ready (database and Redis answer) for everyone alike, though a model has no worker.
    "readyz": ("GET", "/readyz", None, (200,) * 6),
    "openapi": ("GET", "/openapi.json", None, (200,) * 6),
}
CASES = [
    pytest.param(name, who, status, id=f"{name}-{who or 'no key'}")
    for name, (_m, _p, _b, statuses) in TABLE.items()
    for who, status in zip(WHO, statuses, strict=True)
]


@pytest.fixture(scope="module", params=BACKENDS)
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("roles")
    drop = None
    if request.param == "sqlite":
        url = copy_sqlite(request.getfixturevalue("sqlite_template"), tmp / "medflow.db")
    else:
        database = request.getfixturevalue("postgres_database")
        schema, url = database.new_schema()
        drop = lambda: database.drop_schema(schema)  # noqa: E731
    settings = api_settings_for(Settings(env="test", database_url=url), redis_url, tmp)
    if drop:
        upgrade(settings)
    engine = make_engine(settings)
    env = build_env(settings, make_session_factory(engine))
    monitor(env.app).refresh()  # /readyz reads the background check's last snapshot
    yield env
    engine.dispose()
    redis.Redis.from_url(redis_url).delete(f"infer.{MODEL}")
    if drop:
        drop()


def _body(kind: str | None) -> dict[str, Any]:
    if kind == "open":
        return {"json": {"model": MODEL, "seal": False}}
    if kind == "files":
        return {
            "data": {"files": [(io.BytesIO(PNG), "a.png")]},
            "content_type": "multipart/form-data",
        }
    if kind == "infer":
        return {
            "data": {"file": (io.BytesIO(PNG), "a.png"), "model": MODEL, "timeout_s": "0.05"},
            "content_type": "multipart/form-data",
        }
    return {}


@pytest.mark.parametrize(("name", "who", "expected"), CASES)
def test_role_matrix(matrix: Env, name: str, who: str | None, expected: int) -> None:
    method, path, body, _ = TABLE[name]
    job = matrix.job(1, owner="submitter", seal=False)  # open: every action applies to it
    client = matrix.app.test_client()
    response = client.open(
        path.format(job=job.id), method=method, headers=matrix.keys.auth(who), **_body(body)
    )
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    if expected in CODES:
        assert response.json["error"]["code"] == CODES[expected]
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_table_covers_every_route(matrix: Env) -> None:
    routed = {
        (method, rule.rule.replace("<job_id>", "{job}"))
        for rule in matrix.app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    tabled = {(method, path.split("?")[0]) for method, path, _b, _s in TABLE.values()}
    assert routed == tabled
