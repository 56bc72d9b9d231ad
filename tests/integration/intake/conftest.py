"""Fixtures for the intake tests: an owner key, a model with a queue of its own, the service."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.models import ApiKey, ModelVersion, Role
from db.session import session_scope
from intake.service import Intake
from storage.blobstore import open_blob_store
from workers.app import make_celery

Factory = sessionmaker[Session]


@pytest.fixture
def owner(session_factory: Factory) -> ApiKey:
    with session_scope(session_factory) as session:
        key = ApiKey(
            name="t", role=Role.SUBMITTER, prefix=secrets.token_hex(4), secret_hash="0" * 64
        )
        session.add(key)
    return key


@pytest.fixture
def model(session_factory: Factory) -> ModelVersion:
    """A model no worker serves: its queue's length counts the messages sent."""
    with session_scope(session_factory) as session:
        row = ModelVersion(name=f"intake-{secrets.token_hex(4)}", version="1", sha256="ab" * 32)
        row.card, row.active = {}, True
        session.add(row)
    return row


@pytest.fixture
def broker(redis_url: str, model: ModelVersion) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.delete(f"infer.{model.name}")
    client.close()


@pytest.fixture
def intake(migrated_settings: Settings, redis_url: str, broker: redis.Redis) -> Iterator[Intake]:
    limits = replace(migrated_settings.limits, max_bytes=1000)
    settings = replace(migrated_settings, redis_url=redis_url, chunk_size=2, limits=limits)
    celery = make_celery(settings)
    yield Intake(settings, open_blob_store(settings), celery, broker)
    celery.close()


def queued(broker: redis.Redis, model: ModelVersion) -> Any:
    return broker.llen(f"infer.{model.name}")
