"""db.jobs on SQLite and Postgres: open (idempotent, racing), add, seal, cancel, read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.job_view import job_view
from db.audit import verify_chain
from db.collect import record_results
from db.jobs import (
    JobStateError,
    add_images,
    cancel_job,
    get_job,
    list_jobs,
    open_job,
    results_page,
    seal_job,
)
from db.models import ApiKey, AuditEvent, Image, ImageStatus, Job, JobStatus, ModelVersion
from db.session import session_scope
from pipeline.result import ImageResult
from tests.integration.db.conftest import blob
from tests.integration.scored import scored

Factory = sessionmaker[Session]


def events(session_factory: Factory, object_id: str | None = None) -> list[AuditEvent]:
    with session_scope(session_factory) as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if object_id is not None:
            query = query.where(AuditEvent.object_id == object_id)
        return list(session.scalars(query))


def test_idempotency_key_returns_the_same_job(
    session_factory: Factory, owner: ApiKey, model: ModelVersion
) -> None:
    with session_scope(session_factory) as session:
        first, created = open_job(session, owner, model, "key-1")
    assert created
    with session_scope(session_factory) as session:
        again, created_again = open_job(session, owner, model, "key-1")
        other, created_other = open_job(session, owner, model, None)
    assert (again.id, created_again) == (first.id, False)
    assert created_other and other.id != first.id
    assert [e.action for e in events(session_factory, first.id)] == ["job.submitted"]


def test_idempotency_key_race_creates_one_job(
    session_factory: Factory, owner: ApiKey, model: ModelVersion
) -> None:
    threads, barrier = 6, threading.Barrier(6)
    outcomes: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            barrier.wait()
            with session_scope(session_factory) as session:
                job, created = open_job(session, owner, model, "same-key")
            outcomes.append((job.id, created))
        except BaseException as exc:
            errors.append(exc)

    _run_threads(submit, threads)
    assert errors == []
    assert len({job_id for job_id, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False] * (threads - 1) + [True]
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert len(events(session_factory)) == 1


def test_add_seal_and_states(session_factory: Factory, owner: ApiKey, model: ModelVersion) -> None:
    with session_scope(session_factory) as session:
        job, _ = open_job(session, owner, model, None)
        with pytest.raises(JobStateError) as empty:
            seal_job(session, job)
        assert empty.value.code == "JOB_EMPTY"
        first = add_images(session, job, [("a.png", blob(0)), ("b.png", blob(1))])
        second = add_images(session, job, [("c.png", blob(2))])
        unsent = seal_job(session, job)
    # Each image is marked sent when added (the API enqueues it after that commit), so the
    # seal has nothing left to send.
    added = first + second
    assert [(i.position, i.ref, i.attempts) for i in added] == [
        (0, "a.png", 1),
        (1, "b.png", 1),
        (2, "c.png", 1),
    ]
    assert all(i.enqueued_at is not None and i.enqueued_at <= job.sealed_at for i in added)
    assert unsent == []
    assert (job.status, job.total) == (JobStatus.QUEUED, 3)
    with session_scope(session_factory) as session, pytest.raises(JobStateError) as late:
        add_images(session, job, [("d.png", blob(3))])
    assert late.value.code == "JOB_NOT_OPEN"
    with session_scope(session_factory) as session, pytest.raises(JobStateError) as twice:
        seal_job(session, job)
    assert twice.value.code == "JOB_NOT_OPEN"
    actions = [e.action for e in events(session_factory, job.id)]
    assert actions == ["job.submitted", "job.images_added", "job.images_added", "job.sealed"]
    assert [e.payload for e in events(session_factory, job.id)][1:] == [
        {"count": 2},
        {"count": 1},
        {"count": 3},
    ]


def test_cancel_keeps_results_and_ignores_later_ones(
    session_factory: Factory, make_job: Callable[..., Any]
) -> None:
    job, images = make_job(3)
    with session_scope(session_factory) as session:
        record_results(session, job.id, scored([(images[0].id, ImageResult("r", "ok", scores={}))]))
    with session_scope(session_factory) as session:
        cancelled = cancel_job(session, get_job(session, job.id), "key:99")
    assert cancelled.status == JobStatus.CANCELLED
    assert (cancelled.succeeded, cancelled.cancelled, cancelled.pending) == (1, 2, 0)
    assert cancelled.finished_at is not None
    with session_scope(session_factory) as session:
        late = [(images[1].id, ImageResult("r", "ok", scores={}))]
        assert record_results(session, job.id, scored(late)) == 0
        statuses = session.scalars(select(Image.status).order_by(Image.position)).all()
        assert statuses == [ImageStatus.SUCCEEDED, ImageStatus.CANCELLED, ImageStatus.CANCELLED]
        with pytest.raises(JobStateError) as again:
            cancel_job(session, get_job(session, job.id), "key:99")
        assert again.value.code == "JOB_ALREADY_FINISHED"
    last = events(session_factory, job.id)[-1]
    assert (last.action, last.actor, last.payload["cancelled"]) == ("job.cancelled", "key:99", 2)


def test_job_view(session_factory: Factory, make_job: Callable[..., Any]) -> None:
    job, images = make_job(4)
    with session_scope(session_factory) as session:
        results = [(i.id, ImageResult("r", "ok", scores={"x": 0.5})) for i in images[:2]]
        record_results(session, job.id, scored(results))
        job = get_job(session, job.id)
    assert job is not None and job.started_at is not None
    view = job_view(job, job.started_at + timedelta(seconds=4))
    assert view["status"] == "running"
    assert view["model"] == {"name": "nodule-detector", "version": "1", "sha256": "ab" * 32}
    assert view["counts"] == {"total": 4, "succeeded": 2, "failed": 0, "pending": 2, "cancelled": 0}
    assert (view["progress"], view["throughput_per_s"], view["eta_s"]) == (0.5, 0.5, 4.0)
    assert view["created_at"].endswith("Z") and view["finished_at"] is None
    parsed = datetime.fromisoformat(view["started_at"].replace("Z", "+00:00"))
    assert parsed == job.started_at and parsed.tzinfo is not None


def test_results_page_and_list_jobs(
    session_factory: Factory, make_job: Callable[..., Any], owner: ApiKey
) -> None:
    jobs = [make_job(5)[0] for _ in range(3)]
    with session_scope(session_factory) as session:
        first = results_page(session, jobs[0], 2, None)
        second = results_page(session, jobs[0], 2, first[-1].position)
        last = results_page(session, jobs[0], 2, second[-1].position)
        assert [i.position for i in first + second + last] == [0, 1, 2, 3, 4]
        page1 = list_jobs(session, owner.id, 2)
        page2 = list_jobs(session, owner.id, 2, before=page1[-1].id)
        assert [j.id for j in page1 + page2] == [j.id for j in reversed(jobs)]
        assert list_jobs(session, owner.id + 1, 10) == []
        assert get_job(session, "0" * 32) is None


def test_audit_chain_holds_no_refs(session_factory: Factory, make_job: Callable[..., Any]) -> None:
    job, images = make_job(2)
    with session_scope(session_factory) as session:
        record_results(session, job.id, scored([(i.id, ImageResult("r", "ok")) for i in images]))
    with session_scope(session_factory) as session:
        assert verify_chain(session).ok
    text = repr([(e.payload, e.object_id) for e in events(session_factory)])
    assert "scan-" not in text  # the refs given by make_job


def _run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_timestamps_are_aware_utc(session_factory: Factory, make_job: Callable[..., Any]) -> None:
    job, _ = make_job(1)
    with session_scope(session_factory) as session:
        stored = get_job(session, job.id)
        assert stored is not None and stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - stored.created_at) < timedelta(minutes=1)
