"""Fixtures for the db layer's tests: an owner key, a model version, jobs."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.jobs import add_images, open_job, seal_job
from db.models import ApiKey, Image, Job, ModelVersion, Role
from db.session import session_scope
from storage.blobstore import BlobInfo

Factory = sessionmaker[Session]


@pytest.fixture
def owner(session_factory: Factory) -> ApiKey:
    with session_scope(session_factory) as session:
        key = ApiKey(
            name="test", role=Role.SUBMITTER, prefix=secrets.token_hex(4), secret_hash="0" * 64
        )
        session.add(key)
    return key


@pytest.fixture
def model(session_factory: Factory) -> ModelVersion:
    with session_scope(session_factory) as session:
        row = ModelVersion(name="nodule-detector", version="1", sha256="ab" * 32, card={})
        row.active = True
        session.add(row)
    return row


def blob(index: int) -> BlobInfo:
    return BlobInfo(hashlib.sha256(f"image {index}".encode()).hexdigest(), 100 + index)


@pytest.fixture
def make_job(
    session_factory: Factory, owner: ApiKey, model: ModelVersion
) -> Callable[..., tuple[Job, list[Image]]]:
    """A job with ``n`` images, sealed unless asked otherwise; returns (job, images)."""

    def make(n: int, *, seal: bool = True) -> tuple[Job, list[Image]]:
        with session_scope(session_factory) as session:
            job, _ = open_job(session, owner, model, None)
            images = add_images(session, job, [(f"scan-{i}.dcm", blob(i)) for i in range(n)])
            if seal:
                assert seal_job(session, job) == []  # every image was sent as it was added
        return job, images

    return make
