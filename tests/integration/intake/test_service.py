"""The intake service: blobs stored first, rows in the caller's transaction, sends after commit."""

from __future__ import annotations

import io

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.jobs import JobStateError
from db.model_registry import ModelNotFound
from db.models import ApiKey, Image, Job, JobStatus, ModelVersion
from db.session import session_scope
from intake.errors import FileTooLarge
from intake.service import Intake
from tests.integration.intake.conftest import queued
from workers.cancel import is_cancelled

Factory = sessionmaker[Session]


def files(n: int) -> list[tuple[str, io.BytesIO]]:
    return [(f"scan-{i}.png", io.BytesIO(f"image {i}".encode())) for i in range(n)]


def test_submit_writes_the_job_and_sends_its_chunks_after_commit(
    session_factory: Factory,
    intake: Intake,
    owner: ApiKey,
    model: ModelVersion,
    broker: redis.Redis,
) -> None:
    stored = intake.store_files(files(3))
    assert all(intake.blobs.exists(blob.key) for _, blob in stored)
    with session_scope(session_factory) as session:
        job, created = intake.submit(session, owner, model.name, stored, idempotency_key="k")
        assert queued(broker, model) == 0
    assert created and job.status == JobStatus.QUEUED and job.total == 3
    assert queued(broker, model) == 2  # chunks of 2
    with session_scope(session_factory) as session:
        again, created = intake.submit(session, owner, model.name, stored, idempotency_key="k")
    assert (again.id, created, queued(broker, model)) == (
        job.id,
        False,
        2,
    )  # a replay sends nothing


def test_a_rolled_back_submission_leaves_no_job_and_sends_nothing(
    session_factory: Factory,
    intake: Intake,
    owner: ApiKey,
    model: ModelVersion,
    broker: redis.Redis,
) -> None:
    stored = intake.store_files(files(2))
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        intake.submit(session, owner, model.name, stored)
        raise RuntimeError("the answer could not be written")
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert queued(broker, model) == 0


def test_a_receiver_opens_adds_and_seals_in_one_transaction(
    session_factory: Factory,
    intake: Intake,
    owner: ApiKey,
    model: ModelVersion,
    broker: redis.Redis,
) -> None:
    # The shape a DICOM receiver uses: open, add blobs as they come, seal.
    with session_scope(session_factory) as session:
        job, _ = intake.open_job(session, owner, f"{model.name}:1")
        intake.add_blobs(session, job, intake.store_files(files(1)))
        intake.add_blobs(session, job, intake.store_files(files(2)[1:]))
        intake.seal(session, job)
    with session_scope(session_factory) as session:
        positions = session.scalars(select(Image.position).where(Image.job_id == job.id))
        assert sorted(positions) == [0, 1]
    assert queued(broker, model) == 2  # one send per add_blobs
    with pytest.raises(JobStateError), session_scope(session_factory) as session:
        intake.add_blobs(session, job, intake.store_files(files(1)))


def test_cancel_sets_the_flag_only_once_committed(
    session_factory: Factory,
    intake: Intake,
    owner: ApiKey,
    model: ModelVersion,
    broker: redis.Redis,
) -> None:
    with session_scope(session_factory) as session:
        job, _ = intake.submit(session, owner, model.name, intake.store_files(files(1)))
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        intake.cancel(session, job, owner)
        raise RuntimeError
    assert not is_cancelled(broker, job.id)
    with session_scope(session_factory) as session:
        assert intake.cancel(session, job, owner).status == JobStatus.CANCELLED
        assert not is_cancelled(broker, job.id)
    assert is_cancelled(broker, job.id)


def test_refusals_name_the_image_by_index(
    session_factory: Factory, intake: Intake, owner: ApiKey
) -> None:
    limit = intake.settings.limits.max_bytes
    too_big = [("ok.png", io.BytesIO(b"x")), ("big.png", io.BytesIO(b"x" * (limit + 1)))]
    with pytest.raises(FileTooLarge) as refused:
        intake.store_files(too_big)
    assert refused.value.details == {"index": 1, "max_bytes": limit}
    assert "big.png" not in str(refused.value)
    with pytest.raises(ModelNotFound), session_scope(session_factory) as session:
        intake.open_job(session, owner, "no-such-model")
