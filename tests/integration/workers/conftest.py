"""Fixtures for the worker tests: a private Redis, the tiny model, settings, the raw broker.

The workers get a Redis server of their own (started like `medflow up` starts one), not the
session's database: a whole stack from another test directory may run on that database for the
session, and its collector would consume the ``results`` queue these tests read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings
from tests.integration.workers.helpers import MODEL


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.build import build_models

    root = tmp_path_factory.mktemp("models")
    list(build_models(root, [MODEL]))
    return root


@pytest.fixture(scope="module")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from api.children import Child, free_port, stop_all, wait_until
    from api.stack import redis_answers, redis_server_argv

    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = Child("redis", redis_server_argv(port, workdir), os.environ, workdir / "redis.log")
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_answers(url), [server], 30, "Redis")
        yield url
    finally:
        stop_all([server], 5)


@pytest.fixture(scope="module")
def worker_settings(
    private_redis_url: str, tiny_model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    blobs = tmp_path_factory.mktemp("blobs")
    return replace(
        Settings(env="test"),
        redis_url=private_redis_url,
        blob_url=f"file://{blobs}",
        model_root=tiny_model_root,
        models=(MODEL,),
        worker_concurrency=1,
    )


@pytest.fixture(scope="module")
def broker(worker_settings: Settings) -> Iterator[redis.Redis]:
    """The raw Redis client on the workers' broker."""
    client = redis.Redis.from_url(worker_settings.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def celery_app(worker_settings: Settings) -> Iterator[Any]:
    """The sending side (what the API holds): same settings, no worker in this process."""
    from workers.app import make_celery

    app = make_celery(worker_settings)
    yield app
    app.close()


@pytest.fixture(scope="module")
def store(worker_settings: Settings) -> Any:
    from storage.blobstore import open_blob_store

    return open_blob_store(worker_settings)
