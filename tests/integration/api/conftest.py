"""Fixtures for the API tests: an app on a migrated database and real Redis, keys per role,
a model row, and helpers to read what the app sent to the workers' queues.

The seeding helpers are plain functions so that a module-scoped environment (the role matrix,
hundreds of cases on one database per backend) can use them as well as the per-test fixtures.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api.app import create_app
from api.readiness import stop_monitors
from config.settings import Settings
from db.collect import record_results
from db.jobs import add_images, open_job, seal_job
from db.keys import create_key
from db.models import ApiKey, Image, Job, ModelVersion, Role
from db.session import make_engine, make_session_factory, session_scope
from pipeline.result import ImageResult
from storage.blobstore import FileBlobStore
from tests.blobs import put_bytes
from tests.integration.scored import scored

MODEL = "tiny"
LABELS = ["A", "B", "C"]
CARD = {"name": MODEL, "version": "1", "output": {"labels": LABELS}}
# A configured model no worker serves: /readyz stays "not ready" even when a worker of another
# test session answers the broadcast (Redis pub/sub ignores the database number).
UNSERVED = f"unserved-{secrets.token_hex(4)}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # sniffs as PNG; decoding is the workers' business
ROLES = {
    "submitter": Role.SUBMITTER,
    "other": Role.SUBMITTER,  # a second submitter, for "another's job" cases
    "operator": Role.OPERATOR,
    "auditor": Role.AUDITOR,
    "admin": Role.ADMIN,
}


@dataclass
class Keys:
    tokens: dict[str, str]
    ids: dict[str, int]

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}


@dataclass
class Env:
    """One app and what the tests need to look behind it."""

    settings: Settings
    app: Flask
    sessions: Any
    keys: Keys
    model_id: int
    blobs: FileBlobStore

    def job(self, n: int = 2, *, owner: str = "submitter", seal: bool = True) -> Job:
        return new_job(self, n, owner=owner, seal=seal)


def api_settings_for(base: Settings, redis_url: str, tmp: Path) -> Settings:
    for name in ("imports", "models"):
        (tmp / name).mkdir(exist_ok=True)
    return replace(
        base,
        redis_url=redis_url,
        models=(MODEL, UNSERVED),
        import_roots=(tmp / "imports",),
        model_root=tmp / "models",
        blob_url=f"file://{tmp / 'blobs'}",
        rate_limit="100000/minute",
        chunk_size=2,
    )


def build_env(settings: Settings, sessions: Any) -> Env:
    with session_scope(sessions) as session:
        row = ModelVersion(name=MODEL, version="1", sha256="ab" * 32, card=CARD, active=True)
        session.add(row)
        tokens, ids = {}, {}
        for who, role in ROLES.items():
            key, token = create_key(session, who, role)
            tokens[who], ids[who] = token, key.id
    blobs = FileBlobStore(settings.blob_url.removeprefix("file://"))
    return Env(settings, create_app(settings), sessions, Keys(tokens, ids), row.id, blobs)


def new_job(env: Env, n: int, *, owner: str, seal: bool) -> Job:
    """A job built through db.jobs directly: nothing is enqueued (the API tests check that)."""
    stored = [put_bytes(env.blobs, PNG + bytes([i])) for i in range(n)]
    with session_scope(env.sessions) as session:
        key = session.get(ApiKey, env.keys.ids[owner])
        job, _ = open_job(session, key, session.get(ModelVersion, env.model_id), None)
        add_images(session, job, [(f"scan-{i}.png", b) for i, b in enumerate(stored)])
        if seal:
            seal_job(session, job)
    return job


@pytest.fixture(autouse=True)
def no_monitor_outlives_its_test() -> Iterator[None]:
    """Readiness threads of finished tests' apps would broadcast for ever, all on the one
    Celery connection pool the process shares (kombu keys it by broker URL): enough of them
    took every connection, and a later send waited for one for ever."""
    yield
    stop_monitors()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete(f"infer.{MODEL}")  # the session's Redis database is shared by the tests
    yield client
    client.close()


@pytest.fixture
def env(
    migrated_settings: Settings, redis_url: str, tmp_path: Path, redis_client: Any
) -> Iterator[Env]:
    settings = api_settings_for(migrated_settings, redis_url, tmp_path)
    engine = make_engine(settings)
    yield build_env(settings, make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def app(env: Env) -> Flask:
    return env.app


@pytest.fixture
def client(env: Env) -> FlaskClient:
    return env.app.test_client()


@pytest.fixture
def keys(env: Env) -> Keys:
    return env.keys


@pytest.fixture
def sessions(env: Env) -> Any:
    return env.sessions


@pytest.fixture
def api_settings(env: Env) -> Settings:
    return env.settings


@pytest.fixture
def make_job(env: Env) -> Callable[..., Job]:
    return env.job


@pytest.fixture
def finish(env: Env) -> Callable[..., None]:
    """Record a result for every pending image of a job, as the collector would."""

    def run(job_id: str, *, fail_first: bool = False) -> None:
        with session_scope(env.sessions) as session:
            query = select(Image).where(Image.job_id == job_id).order_by(Image.position)
            images = session.scalars(query).all()
            results = [(i.id, fake_result(i, fail_first and i.position == 0)) for i in images]
            record_results(session, job_id, scored(results))

    return run


def fake_result(image: Image, failed: bool) -> ImageResult:
    if failed:
        return ImageResult(
            ref="-",
            status="failed",
            sha256=image.blob_key,
            error_code="UNKNOWN_FORMAT",
            error_message="not a DICOM, PNG or JPEG",
        )
    return ImageResult(
        ref="-",
        status="ok",
        sha256=image.blob_key,
        scores={"A": 0.9, "B": 0.1, "C": 0.5},
        positive=["A", "C"],
        format="png",
        width=64,
        height=64,
        timings_ms={"decode": 1.0},
        facts={"patient_pseudonym": "p" * 32, "mode": "L"},
    )


def sent_chunks(client: redis.Redis, model: str = MODEL) -> list[dict[str, Any]]:
    """The infer_chunk messages waiting in ``infer.<model>``, oldest first (kombu's format)."""
    found = []
    for raw in reversed(client.lrange(f"infer.{model}", 0, -1)):  # kombu LPUSHes
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append({"task": message["headers"]["task"], "args": args})
    return found


def copy_sqlite(template: Path, dest: Path) -> str:
    shutil.copyfile(template, dest)
    return f"sqlite:///{dest}"
